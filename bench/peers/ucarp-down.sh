#!/bin/sh
# ucarp downscript: INTERFACE VIP [XPARAM] on becoming backup, and at start
# (no --neutral), which removes a VIP left behind by a killed ucarp.
ip addr del "$2/32" dev "$1" 2>/dev/null
echo "$(date +%s%N) $3 BACKUP" >> "$(dirname "$0")/events.log"
