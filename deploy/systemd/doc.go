// Package systemd holds starbook's systemd unit (starbook.service) and the
// environment file it reads (starbook.env): one node with embedded etcd,
// run as a dynamic user in a sandbox, its data in /var/lib/starbook.
//
// The files are data; this package holds only their test, which checks the
// sandbox directives the unit must keep and, where systemd-analyze is
// installed, that systemd parses the unit without a warning and rates its
// exposure low.
package systemd
