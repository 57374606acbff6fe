package store

import "context"

// Backup is a map's rule for the backup tier.
type Backup uint8

const (
	NoBackup    Backup = iota // the cache tier only
	SyncBackup                // answered after the backup confirmed the write
	AsyncBackup               // answered after the cache write; the backup write is queued
)

// Route is what a request's map asks of the layers below the policy: its
// name, for metrics labels, and its tier rule. The zero Route is a key
// outside every map, kept in the cache tier only.
type Route struct {
	Map    string // "" outside every map
	Backup Backup
	// FailOnBackupError answers a write whose sync backup write failed with
	// an error (on_backup_error: fail); otherwise the cache write stands and
	// the failure is counted (degrade).
	FailOnBackupError bool
}

// Request carries what one request's layers learn about it, so that each
// fact is resolved once: the protocol layer makes one Request per
// connection and puts it in the context it passes down, the policy layer
// sets Route for each request, the tiers read it, and the protocol layer
// labels its metrics with it after the call. A connection serves one
// request at a time, so a Request is never shared between goroutines; a
// layer that keeps a route beyond the call (an async write) copies it.
type Request struct {
	Route Route
}

type requestKey struct{}

// NewContext returns ctx carrying r.
func NewContext(ctx context.Context, r *Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the Request carried by ctx, or nil.
func RequestFrom(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// RouteFrom returns the route of ctx's request: the zero Route when ctx
// carries none.
func RouteFrom(ctx context.Context) Route {
	if r := RequestFrom(ctx); r != nil {
		return r.Route
	}
	return Route{}
}
