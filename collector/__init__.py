"""MP Dashboard collector: Wildberries and Ozon FBO stocks, orders and sales into SQLite."""

__version__ = "0.1.0"
