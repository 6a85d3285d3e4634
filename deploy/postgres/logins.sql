-- The login users opsrecon's processes connect with, each a member of the group role that
-- `opsrecon db upgrade` creates on PostgreSQL (migration 0013_roles: NOLOGIN roles, granted
-- per table and column). Run once, as an administrator (a login with CREATEROLE), after the
-- upgrade, with the passwords as psql variables:
--
--   psql -h db.internal -U postgres -d opsrecon -v ON_ERROR_STOP=1 \
--     -v code_server_password=... -v run_pods_password=... \
--     -v operators_password=... -v viewers_password=... -f deploy/postgres/logins.sql
--
-- Put each login's URL where its process reads OPSRECON_DATABASE_URL (README, "Running on
-- PostgreSQL": database roles). The owner, which runs `opsrecon db upgrade`, is not here: it
-- is the login that owns the database.

-- The code server (sensors and schedules) and `opsrecon reconcile`: decisions, audit rows,
-- the decision outbox, the alert ledger, scheduled runs. Never an artifact table.
CREATE ROLE opsrecon_code_server LOGIN PASSWORD :'code_server_password' IN ROLE opsrecon_reconciler;

-- Job steps (run pods, run workers, Celery workers): their run's transitions, its audit rows
-- and outbox entry, the environment's readiness, the artifact tables.
CREATE ROLE opsrecon_run_pods LOGIN PASSWORD :'run_pods_password' IN ROLE opsrecon_worker;

-- Operators' `opsrecon`: starting and launching runs, reviews' lifecycle, reconcile. (Add
-- opsrecon_worker too for `--in-process` launches, whose job steps run in the CLI.)
CREATE ROLE opsrecon_operators LOGIN PASSWORD :'operators_password' IN ROLE opsrecon_operator;

-- Read-only `opsrecon runs list/show/explain` and `reviews list/show`: writes nothing.
CREATE ROLE opsrecon_viewers LOGIN PASSWORD :'viewers_password' IN ROLE opsrecon_reader;
