#!/bin/sh
# ucarp upscript: ucarp calls it with INTERFACE VIP [XPARAM] on becoming master.
# Adds the VIP as /32; ucarp itself sends the gratuitous ARP.
ip addr add "$2/32" dev "$1"
echo "$(date +%s%N) $3 MASTER" >> "$(dirname "$0")/events.log"
