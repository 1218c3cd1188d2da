#!/bin/sh
# keepalived notify script: keepalived appends TYPE NAME STATE PRIORITY.
# Logs "<epoch ns> <node> <state>" so bench/failover can place the state
# change on the prober's clock (through the wall clock).
echo "$(date +%s%N) $1 $4" >> "$(dirname "$0")/events.log"
