"""Apache Airflow provider for Airplane task runs.

Every Airflow process imports this package when it discovers providers, so it imports nothing.
"""

__version__ = "0.2.0"
