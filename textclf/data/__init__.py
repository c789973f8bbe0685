"""Where data comes from and how it becomes train / validation / test splits: the source registry, the prepare stage, built-in corpora."""
