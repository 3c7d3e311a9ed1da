// Package ovsdb is a client of an OVSDB server (RFC 7047), as ovs-vswitchd
// is a client of ovsdb-server with the Open_vSwitch schema
// (ovs-vswitchd.conf.db(5)).
//
// It covers:
//
//   - JSON-RPC 1.0 over a stream ("unix:PATH" or "tcp:HOST:PORT"): requests
//     matched to replies by id, notifications, the server's "echo" requests
//     answered, an inactivity probe of our own (an echo after a quiet
//     interval, the connection dropped if the peer stays silent), a bound on
//     the size of one message, and a framing decoder that copes with messages
//     split across reads and several in one read. Malformed or unexpected
//     input closes the connection with an error wrapping [ErrProtocol] or
//     [ErrMessageTooLarge] and is counted in [Stats]; it never panics.
//   - The data model: atoms (int64, float64, bool, string, [UUID],
//     [NamedUUID]), [Set] (with the one-element shorthand), [Map], [Row], and
//     the [Schema] that get_schema returns.
//   - The methods list_dbs, get_schema, transact (operations built with
//     [Insert], [Select], [Update], [Mutate], [Delete], [Wait], [Comment],
//     [Assert]), monitor and monitor_cond, whose initial contents and
//     update/update2 notifications are applied to a [Replica]: an in-memory
//     table → UUID → row cache that callers read consistently, with change
//     callbacks. monitor_cancel is sent when a monitor is cancelled.
//   - Reconnection with exponential backoff: when the server goes away the
//     [Client] dials again, fetches the schema, monitors again, and resyncs
//     each replica, reporting rows that vanished as deletions, new rows as
//     insertions and changed rows as modifications.
//
// Not covered: locks (lock/steal/unlock), monitor_cond_since and
// conditional monitoring clauses, set_db_change_aware, and the server role
// (this package is a client only).
package ovsdb
