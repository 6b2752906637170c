# The apps of the local stack, in start order: sourced by start.sh, stop.sh and status.sh so that
# the list lives in one place. (The services are services.sh's business.)
# shellcheck disable=SC2034
APPS=(web-server outbox-relay invoice-service billing-service shipping-service email-service partner-sim)
