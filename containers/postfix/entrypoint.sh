#!/bin/sh
# Configures and runs Postfix in the foreground (see Containerfile).
set -eu
port=${SMTP_PORT:-25}

postconf -e \
  compatibility_level=3.6 \
  maillog_file=/dev/stdout \
  inet_interfaces=all \
  inet_protocols=ipv4 \
  myhostname=test.example \
  mydomain=test.example \
  'myorigin=$myhostname' \
  mydestination=test.example \
  mynetworks=127.0.0.0/8 \
  relayhost= \
  'default_transport=error:5.7.1 outbound mail is disabled in this test image' \
  alias_maps= alias_database= \
  biff=no in_flow_delay=0s \
  postscreen_access_list= \
  postscreen_greet_wait=1s \
  postscreen_dnsbl_sites= \
  postscreen_pipelining_enable=no \
  postscreen_non_smtp_command_enable=no \
  postscreen_bare_newline_enable=no \
  postscreen_cache_cleanup_interval=0 \
  address_verify_poll_delay=1s \
  address_verify_poll_count=3 \
  address_verify_cache_cleanup_interval=0 \
  'smtpd_recipient_restrictions=reject_unverified_recipient, permit_mynetworks, reject' \
  unverified_recipient_reject_code=550

# postscreen on $SMTP_LISTEN (default: port $SMTP_PORT on every address)
# in front of smtpd; no chroot (the image is the jail).
listen=${SMTP_LISTEN:-$port}
postconf -M# smtp/inet
postconf -M "$listen/inet=$listen inet n - n - 1 postscreen" \
  'smtpd/pass=smtpd pass - - n - - smtpd' \
  'postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd'
for s in $(postconf -M | awk '$5 == "y" { print $1 "/" $2 }'); do
  postconf -F "$s/chroot=n"
done

# POSTFIX_<parameter>=value, as the boky/postfix image reads them.
env | sed -n 's/^POSTFIX_\([a-z][a-z0-9_]*\)=\(.*\)$/\1=\2/p' | while IFS= read -r kv; do
  postconf -e "$kv"
done

# The main.cf lines of a file (the chart's ConfigMap FULLNAME-postfix, key
# main.cf), when asked.
if [ -n "${POSTFIX_MAIN_CF:-}" ]; then
  sed -n 's/^\([a-z0-9_]*\) *= *\(.*\)$/\1=\2/p' "$POSTFIX_MAIN_CF" | while IFS= read -r kv; do
    postconf -e "$kv"
  done
fi

# PROXY protocol in front of postscreen (a load balancer's), when asked.
if [ -n "${POSTSCREEN_UPSTREAM_PROXY:-}" ]; then
  postconf -e "postscreen_upstream_proxy_protocol=$POSTSCREEN_UPSTREAM_PROXY"
fi

postfix check
exec postfix start-fg
