//! The FastCGI record header and the protocol's numeric vocabulary (FastCGI 1.0, §8).
//!
//! Every FastCGI message is a record: an 8-byte header, `contentLength` bytes of content and
//! `paddingLength` bytes of padding the receiver ignores. The names below are the spec's own
//! (`FCGI_BEGIN_REQUEST`, `FCGI_KEEP_CONN`…), so the code reads like the specification.

/// Length of a record header in bytes (`FCGI_HEADER_LEN`).
pub const FCGI_HEADER_LEN: usize = 8;
/// The only protocol version there is (`FCGI_VERSION_1`).
pub const FCGI_VERSION_1: u8 = 1;
/// The request id of management records (`FCGI_NULL_REQUEST_ID`).
pub const FCGI_NULL_REQUEST_ID: u16 = 0;
/// Largest content of one record: `contentLength` is a 16-bit field.
pub const FCGI_MAX_CONTENT_LEN: usize = 0xffff;

/// Record type: web server → application, starts a request.
pub const FCGI_BEGIN_REQUEST: u8 = 1;
/// Record type: web server → application, aborts a request.
pub const FCGI_ABORT_REQUEST: u8 = 2;
/// Record type: application → web server, ends a request.
pub const FCGI_END_REQUEST: u8 = 3;
/// Record type: web server → application, the name/value stream of a request.
pub const FCGI_PARAMS: u8 = 4;
/// Record type: web server → application, the request body stream.
pub const FCGI_STDIN: u8 = 5;
/// Record type: application → web server, the response stream.
pub const FCGI_STDOUT: u8 = 6;
/// Record type: application → web server, the error stream.
pub const FCGI_STDERR: u8 = 7;
/// Record type: web server → application, the Filter role's file data stream.
pub const FCGI_DATA: u8 = 8;
/// Management record type: web server → application, asks for variables.
pub const FCGI_GET_VALUES: u8 = 9;
/// Management record type: application → web server, answers `FCGI_GET_VALUES`.
pub const FCGI_GET_VALUES_RESULT: u8 = 10;
/// Management record type: application → web server, "I don't understand that record type".
pub const FCGI_UNKNOWN_TYPE: u8 = 11;
/// The highest record type FastCGI 1.0 defines (`FCGI_MAXTYPE`).
pub const FCGI_MAXTYPE: u8 = FCGI_UNKNOWN_TYPE;

/// Role in `FCGI_BEGIN_REQUEST`: answer an HTTP request (the only role ferrocgi serves).
pub const FCGI_RESPONDER: u16 = 1;
/// Role in `FCGI_BEGIN_REQUEST`: decide whether a request is authorized (refused).
pub const FCGI_AUTHORIZER: u16 = 2;
/// Role in `FCGI_BEGIN_REQUEST`: filter a file through the application (refused).
pub const FCGI_FILTER: u16 = 3;

/// Flag in `FCGI_BEGIN_REQUEST`: keep the connection open after this request.
pub const FCGI_KEEP_CONN: u8 = 1;

/// `FCGI_GET_VALUES` variable: most concurrent transport connections the application accepts.
pub const FCGI_MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
/// `FCGI_GET_VALUES` variable: most concurrent requests the application accepts.
pub const FCGI_MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
/// `FCGI_GET_VALUES` variable: `"1"` if the application multiplexes connections, else `"0"`.
pub const FCGI_MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// `protocolStatus` of `FCGI_END_REQUEST` (FastCGI 1.0, §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE`: normal end of the request.
    RequestComplete = 0,
    /// `FCGI_CANT_MPX_CONN`: a second concurrent request on a connection that handles one at a
    /// time.
    CantMpxConn = 1,
    /// `FCGI_OVERLOADED`: the application ran out of some resource (here: `max_reqs`).
    Overloaded = 2,
    /// `FCGI_UNKNOWN_ROLE`: the role in `FCGI_BEGIN_REQUEST` is not served.
    UnknownRole = 3,
}

impl ProtocolStatus {
    /// The byte sent on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A record header (`FCGI_Header`), without the reserved byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `version`; always [`FCGI_VERSION_1`] in a valid record.
    pub version: u8,
    /// `type`, one of the `FCGI_*` record type constants (or an unknown one).
    pub record_type: u8,
    /// `requestId`; [`FCGI_NULL_REQUEST_ID`] for management records.
    pub request_id: u16,
    /// `contentLength`.
    pub content_length: u16,
    /// `paddingLength`.
    pub padding_length: u8,
}

impl Header {
    /// Reads a header from its 8 bytes. Never fails: any 8 bytes are a header; whether the
    /// values make sense is the connection state machine's business.
    pub fn parse(b: &[u8; FCGI_HEADER_LEN]) -> Header {
        Header {
            version: b[0],
            record_type: b[1],
            request_id: u16::from_be_bytes([b[2], b[3]]),
            content_length: u16::from_be_bytes([b[4], b[5]]),
            padding_length: b[6],
        }
    }

    /// The 8 bytes on the wire (reserved byte zero).
    pub fn to_bytes(&self) -> [u8; FCGI_HEADER_LEN] {
        let id = self.request_id.to_be_bytes();
        let len = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type,
            id[0],
            id[1],
            len[0],
            len[1],
            self.padding_length,
            0,
        ]
    }

    /// Header, content and padding: the whole record's length.
    pub fn record_len(&self) -> usize {
        FCGI_HEADER_LEN + usize::from(self.content_length) + usize::from(self.padding_length)
    }
}

/// The padding that brings `content_len` to a multiple of 8, as the spec recommends
/// ("aligned data is processed more efficiently"); nginx pads, Apache and lighttpd do not.
pub fn padding_for(content_len: usize) -> u8 {
    // Always < 8, so the cast cannot truncate.
    ((8 - content_len % 8) % 8) as u8
}

/// The spec's name for a record type, for error messages and logs.
pub fn type_name(record_type: u8) -> &'static str {
    match record_type {
        FCGI_BEGIN_REQUEST => "FCGI_BEGIN_REQUEST",
        FCGI_ABORT_REQUEST => "FCGI_ABORT_REQUEST",
        FCGI_END_REQUEST => "FCGI_END_REQUEST",
        FCGI_PARAMS => "FCGI_PARAMS",
        FCGI_STDIN => "FCGI_STDIN",
        FCGI_STDOUT => "FCGI_STDOUT",
        FCGI_STDERR => "FCGI_STDERR",
        FCGI_DATA => "FCGI_DATA",
        FCGI_GET_VALUES => "FCGI_GET_VALUES",
        FCGI_GET_VALUES_RESULT => "FCGI_GET_VALUES_RESULT",
        FCGI_UNKNOWN_TYPE => "FCGI_UNKNOWN_TYPE",
        _ => "unknown record type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let b = [1, FCGI_STDIN, 0x12, 0x34, 0xff, 0xff, 7, 0xaa];
        let h = Header::parse(&b);
        assert_eq!(h.request_id, 0x1234);
        assert_eq!(h.content_length, 0xffff);
        assert_eq!(h.record_len(), 8 + 0xffff + 7);
        // The reserved byte is not kept.
        assert_eq!(h.to_bytes(), [1, FCGI_STDIN, 0x12, 0x34, 0xff, 0xff, 7, 0]);
    }

    #[test]
    fn padding() {
        assert_eq!(padding_for(0), 0);
        assert_eq!(padding_for(1), 7);
        assert_eq!(padding_for(8), 0);
        assert_eq!(padding_for(65535), 1);
    }
}
