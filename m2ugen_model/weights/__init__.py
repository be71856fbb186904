"""Reading published weights safely and checking them before anything loads: weight files (allowlisted
``.pth``, memory-mapped, truncation), MERT as transformers' HubertModel, part sizes from directories, which
checkpoint a path names and whether it fits, and the preflight (one ``Finding`` per problem)."""
