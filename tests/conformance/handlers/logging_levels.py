import logging

log = logging.getLogger("app")


def handler(event, context):
    for logger in (logging.getLogger(), log):
        logger.debug("debug %s", 1)
        logger.info("info %s", 2)
        logger.warning("warning %s", 3)
        logger.error("error %s", 4)
        logger.critical("critical %s", 5)
        logger.log(25, "between info and warning")
