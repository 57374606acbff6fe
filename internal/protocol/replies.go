package protocol

// Replies, allocated once.
var (
	crlf            = []byte("\r\n")
	rStored         = []byte("STORED\r\n")
	rNotStored      = []byte("NOT_STORED\r\n")
	rExists         = []byte("EXISTS\r\n")
	rNotFound       = []byte("NOT_FOUND\r\n")
	rDeleted        = []byte("DELETED\r\n")
	rTouched        = []byte("TOUCHED\r\n")
	rEnd            = []byte("END\r\n")
	rOK             = []byte("OK\r\n")
	rReset          = []byte("RESET\r\n")
	rError          = []byte("ERROR\r\n")
	rMN             = []byte("MN\r\n")
	rEN             = []byte("EN\r\n")
	rValue          = []byte("VALUE ")
	rBadFormat      = []byte("CLIENT_ERROR bad command line format\r\n")
	rBadDataChunk   = []byte("CLIENT_ERROR bad data chunk\r\n")
	rBadExptime     = []byte("CLIENT_ERROR invalid exptime argument\r\n")
	rBadDelta       = []byte("CLIENT_ERROR invalid numeric delta argument\r\n")
	rNonNumeric     = []byte("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
	rDeleteUsage    = []byte("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n")
	rTooLarge       = []byte("SERVER_ERROR object too large for cache\r\n")
	rTooManyConns   = []byte("ERROR Too many open connections\r\n")
	rStatsDetail    = []byte("CLIENT_ERROR usage: stats detail on|off|dump\r\n")
	rFlagsTooLong   = []byte("CLIENT_ERROR options flags too long\r\n")
	rMgFlagsTooLong = []byte("CLIENT_ERROR options flags are too long\r\n")
	rBadMetaFlag    = []byte("CLIENT_ERROR invalid or duplicate flag\r\n")
)

// TooManyConnections is the line memcached sends before closing a
// connection over the limit.
func TooManyConnections() []byte { return rTooManyConns }
