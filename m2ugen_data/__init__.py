"""m2ugen_data: the dataset construction library behind the Prefect flows.

Every stage is a plain function over tables and paths so it can be tested and reused without Prefect.
"""

__version__ = "0.1.0"
