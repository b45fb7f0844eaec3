import logging

logging.getLogger("asyncio").setLevel(logging.WARNING)
