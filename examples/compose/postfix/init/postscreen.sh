#!/bin/sh
# Sourced by the boky/postfix image at the end of its start-up (files in
# /docker-init.db/): put postscreen in front of smtpd on port 25, so that
# postscreen's cache, in repcache, is used. The repcache settings
# themselves come from the POSTFIX_* variables in docker-compose.yaml.
postconf -M smtp/inet="smtp inet n - n - 1 postscreen"
postconf -M smtpd/pass="smtpd pass - - n - - smtpd"
postconf -M dnsblog/unix="dnsblog unix - - n - 0 dnsblog"
postconf -M tlsproxy/unix="tlsproxy unix - - n - 0 tlsproxy"
