"""Prefect flows over ``m2ugen_data``: ``build-mucaps``, ``build-muedit``, ``build-muimage`` and
``build-muvideo`` (and their deployments).

The flows only wire the stage functions together, fan batches out on a task runner, retry infrastructure
failures and report; every result lives in the warehouse. Import the flows from their modules
(``flows.build_muedit``); this package imports nothing at load time so ``m2ugen_data`` never pulls in Prefect.
"""
