"""Programs the tests run as real subprocesses, with one thing about them changed on purpose
(each module says what); everything else in such a process is the product's own code."""
