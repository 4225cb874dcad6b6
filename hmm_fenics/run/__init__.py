"""`hmm-fenics run`: run files, the job, its fields, pictures and warnings."""
