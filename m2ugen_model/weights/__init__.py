"""Reading published weight files safely: allowlisted ``.pth`` (``argparse.Namespace`` only), memory-mapped,
truncation found from headers (``files``), and MERT-v1's published directory as transformers' own HubertModel,
no hub code run (``mert``)."""
