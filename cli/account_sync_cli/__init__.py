"""`account-sync`: the operator's command line, against a deployed stack or the local stack alike."""
