//! The FORWARD_REQUEST the `ajp_body_chunk` fuzz target puts before its input: a POST, chunked
//! or with a Content-Length the first input byte picks. Included (`#[path]`) by that target and
//! by the seed test in crates/ferrocgi-proto/tests/captured_seeds.rs, so both shape an input the
//! same way.

use bytes::{Bytes, BytesMut};
use ferrocgi_proto::ajp13::{encode, ForwardRequest};

/// The encoded request and its Content-Length, as `selector` picks them.
pub fn head(selector: u8) -> (Vec<u8>, Option<u64>) {
    let cl = match selector % 4 {
        0 => None,
        1 => Some(0),
        2 => Some(u64::from(selector)),
        _ => Some(20000),
    };
    let mut headers = vec![(
        Bytes::from_static(b"Transfer-Encoding"),
        Bytes::from_static(b"chunked"),
    )];
    if let Some(n) = cl {
        headers.push((
            Bytes::from_static(b"Content-Length"),
            Bytes::from(n.to_string()),
        ));
    }
    let req = ForwardRequest {
        method: Bytes::from_static(b"POST"),
        protocol: Bytes::from_static(b"HTTP/1.1"),
        req_uri: Bytes::from_static(b"/upload"),
        headers,
        ..ForwardRequest::default()
    };
    let mut out = BytesMut::new();
    encode::forward_request(&req, &mut out).expect("small request");
    (out.to_vec(), cl)
}
