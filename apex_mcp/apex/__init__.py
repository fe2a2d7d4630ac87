"""The Apex contract (apex.v1) and its wire protocol."""

import logging

# hpack logs every decoded HTTP/2 header at DEBUG, the Authorization header included: keep it
# above DEBUG whatever the application's log level, so that no key reaches a log.
logging.getLogger("hpack").setLevel(logging.INFO)
