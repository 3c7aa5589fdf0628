//! SCRIPT_NAME and PATH_INFO: what the application is mounted at, and the rest of the path.
//!
//! Front ends disagree (docs/protocols.md): nginx with `fastcgi_split_path_info` and lighttpd
//! send a correct pair; stock nginx `fastcgi_params` and stock Apache mod_proxy_fcgi/scgi send
//! the whole path as SCRIPT_NAME and no PATH_INFO; nginx's stock `scgi_params` send neither;
//! AJP has no such fields at all. The rules, in order:
//!
//! 1. `script_name=PREFIX` given: SCRIPT_NAME is PREFIX, PATH_INFO is the public path (from
//!    REQUEST_URI, percent-decoded, else SCRIPT_NAME + PATH_INFO as sent) minus PREFIX.
//! 2. AJP: SCRIPT_NAME is empty, PATH_INFO is `req_uri` (percent-decoded: Apache re-encodes it;
//!    lighttpd sends it decoded already).
//! 3. A non-empty PATH_INFO was sent: the pair is used as sent.
//! 4. Only SCRIPT_NAME was sent: it is the whole path (the stock-config case), so the app is
//!    taken to be mounted at the root: SCRIPT_NAME empty, PATH_INFO = what was sent.
//! 5. Neither was sent: PATH_INFO is the path of REQUEST_URI, percent-decoded.
//!
//! Note: if this changes, update docs/protocols.md and docs/migrating-from-flup.md.

use ferrocgi_proto::Params;
use ferrocgi_server::Protocol;
use std::borrow::Cow;

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub fn percent_decode(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'%') {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// The path part of a REQUEST_URI (everything before `?`).
fn uri_path(uri: &[u8]) -> &[u8] {
    match uri.iter().position(|&b| b == b'?') {
        Some(i) => &uri[..i],
        None => uri,
    }
}

/// Computes (SCRIPT_NAME, PATH_INFO) by the rules in the module doc.
pub fn script_and_path(
    params: &Params,
    protocol: Protocol,
    script_name: Option<&str>,
    ajp_path_decoded: bool,
) -> (Vec<u8>, Vec<u8>) {
    let sent_sn = params.get(b"SCRIPT_NAME").unwrap_or_default();
    let sent_pi = params.get(b"PATH_INFO").unwrap_or_default();
    let request_path = params.get(b"REQUEST_URI").map(uri_path);

    let (sn, pi): (Vec<u8>, Vec<u8>) = if protocol == Protocol::Ajp13 {
        let raw = request_path.unwrap_or(b"/");
        let path = if ajp_path_decoded {
            Cow::Borrowed(raw)
        } else {
            percent_decode(raw)
        };
        (Vec::new(), path.into_owned())
    } else if !sent_pi.is_empty() {
        (sent_sn.to_vec(), sent_pi.to_vec())
    } else if !sent_sn.is_empty() {
        (Vec::new(), sent_sn.to_vec())
    } else {
        let path = request_path.map(percent_decode).unwrap_or_default();
        (Vec::new(), path.into_owned())
    };

    let Some(prefix) = script_name else {
        return (sn, pi);
    };
    let prefix = prefix.trim_end_matches('/').as_bytes();
    let strip = |full: &[u8]| -> Option<Vec<u8>> {
        let rest = full.strip_prefix(prefix)?;
        (rest.is_empty() || rest[0] == b'/').then(|| rest.to_vec())
    };
    let public = match protocol {
        Protocol::Ajp13 => None,
        _ => request_path.map(percent_decode),
    };
    let mut full = sn.clone();
    full.extend_from_slice(&pi);
    let rest = public
        .and_then(|p| strip(&p))
        .or_else(|| strip(&full))
        .unwrap_or(full);
    (prefix.to_vec(), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().copied().collect()
    }

    fn run(pairs: &[(&str, &str)], proto: Protocol, opt: Option<&str>) -> (String, String) {
        let (s, i) = script_and_path(&p(pairs), proto, opt, false);
        (String::from_utf8(s).unwrap(), String::from_utf8(i).unwrap())
    }

    const URI: (&str, &str) = ("REQUEST_URI", "/prefix/some/path?x=1");

    /// params sent, protocol, `script_name=`, expected (SCRIPT_NAME, PATH_INFO).
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        Protocol,
        Option<&'a str>,
        (&'a str, &'a str),
    );

    #[test]
    fn rules_per_front_end() {
        use Protocol::*;
        let cases: &[Case] = &[
            // nginx split_path_info / lighttpd "/prefix": used as sent.
            (
                &[("SCRIPT_NAME", "/prefix"), ("PATH_INFO", "/some/path"), URI],
                Fastcgi,
                None,
                ("/prefix", "/some/path"),
            ),
            // stock nginx fastcgi_params / stock Apache: whole path in SCRIPT_NAME.
            (
                &[("SCRIPT_NAME", "/prefix/some/path"), URI],
                Fastcgi,
                None,
                ("", "/prefix/some/path"),
            ),
            (
                &[("SCRIPT_NAME", "/prefix/some/path"), URI],
                Fastcgi,
                Some("/prefix"),
                ("/prefix", "/some/path"),
            ),
            // stock scgi_params: neither; REQUEST_URI decoded.
            (
                &[("REQUEST_URI", "/a%20b/c?q=%20")],
                Scgi,
                None,
                ("", "/a b/c"),
            ),
            (&[URI], Scgi, Some("/prefix/"), ("/prefix", "/some/path")),
            // AJP: req_uri.
            (&[URI], Ajp13, None, ("", "/prefix/some/path")),
            (&[URI], Ajp13, Some("/prefix"), ("/prefix", "/some/path")),
            (
                &[("REQUEST_URI", "/prefix")],
                Ajp13,
                Some("/prefix"),
                ("/prefix", ""),
            ),
            // mod_fcgid: the public path comes from REQUEST_URI, not /prefix/mysite.fcgi.
            (
                &[
                    ("SCRIPT_NAME", "/prefix/mysite.fcgi"),
                    ("PATH_INFO", "/some/path"),
                    URI,
                ],
                Fastcgi,
                Some("/prefix"),
                ("/prefix", "/some/path"),
            ),
            (
                &[
                    ("SCRIPT_NAME", "/prefix/mysite.fcgi"),
                    ("PATH_INFO", "/some/path"),
                    URI,
                ],
                Fastcgi,
                None,
                ("/prefix/mysite.fcgi", "/some/path"),
            ),
            // A prefix that does not match: whole path as PATH_INFO, never a wrong cut.
            (
                &[
                    ("SCRIPT_NAME", ""),
                    ("PATH_INFO", "/prefixed/x"),
                    ("REQUEST_URI", "/prefixed/x"),
                ],
                Fastcgi,
                Some("/prefix"),
                ("/prefix", "/prefixed/x"),
            ),
            // Mounted at the root by option.
            (
                &[("SCRIPT_NAME", "/x"), URI],
                Fastcgi,
                Some(""),
                ("", "/prefix/some/path"),
            ),
        ];
        for (pairs, proto, opt, want) in cases {
            assert_eq!(
                run(pairs, *proto, *opt),
                (want.0.to_string(), want.1.to_string()),
                "{pairs:?} {opt:?}"
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            &*percent_decode(b"/a%20b/%C3%A9/x%3By"),
            b"/a b/\xc3\xa9/x;y"
        );
        assert_eq!(&*percent_decode(b"/bad%2/%zz%"), b"/bad%2/%zz%");
        assert!(matches!(percent_decode(b"/plain"), Cow::Borrowed(_)));
    }
}
