//! The status page's formats: php-fpm's text layout (the default) and JSON with php-fpm's field
//! names and meanings, so collectors written for php-fpm read them; OpenMetrics with
//! ferrocgi's metric names; a self-contained HTML page. `full` adds a row per worker.

use super::board::{RowState, RowView, BUCKETS_US};
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// A worker row, and what /proc says of it now: its process's resident memory and peak, and
/// its CPU use since the page's previous look (% of one core).
pub(crate) struct Worker {
    pub(crate) row: RowView,
    pub(crate) rss: u64,
    pub(crate) peak_rss: u64,
    pub(crate) cpu: f64,
}

/// Everything a page shows, read at one moment.
pub(crate) struct Snapshot {
    pub(crate) pool: String,
    pub(crate) manager: &'static str,
    pub(crate) start_us: u64,
    pub(crate) now_us: u64,
    pub(crate) accepted: u64,
    pub(crate) listen_queue: u64,
    pub(crate) max_listen_queue: u64,
    pub(crate) listen_queue_len: u64,
    pub(crate) max_active: u64,
    pub(crate) max_children: usize,
    pub(crate) max_children_reached: u64,
    pub(crate) slow: u64,
    pub(crate) timeouts: u64,
    pub(crate) by_class: [u64; 6],
    pub(crate) failed: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) conns_open: u64,
    pub(crate) in_flight: u64,
    pub(crate) restarts: [(&'static str, u64); 4],
    pub(crate) buckets: [u64; BUCKETS_US.len() + 1],
    pub(crate) duration_sum_us: u64,
    pub(crate) workers: Vec<Worker>,
}

impl Snapshot {
    fn count(&self, state: RowState) -> usize {
        self.workers
            .iter()
            .filter(|w| w.row.state == Some(state))
            .count()
    }
    fn idle(&self) -> usize {
        self.count(RowState::Idle)
    }
    fn active(&self) -> usize {
        self.workers.len() - self.idle()
    }
    fn since(&self, us: u64) -> u64 {
        self.now_us.saturating_sub(us) / 1_000_000
    }
    /// Requests waiting for a worker inside the server (beyond the socket's queue).
    fn waiting(&self) -> u64 {
        self.in_flight.saturating_sub(self.active() as u64)
    }
}

/// The content type and body for a status request with this query string.
pub(crate) fn page(s: &Snapshot, query: &str) -> (&'static str, Vec<u8>) {
    let words: Vec<&str> = query
        .split('&')
        .map(|w| w.split('=').next().unwrap_or(""))
        .collect();
    let full = words.contains(&"full");
    if words.contains(&"json") {
        ("application/json", json_page(s, full).into_bytes())
    } else if words.contains(&"openmetrics") {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            openmetrics(s).into_bytes(),
        )
    } else if words.contains(&"html") {
        (
            "text/html; charset=utf-8",
            html(s, refresh(query)).into_bytes(),
        )
    } else {
        ("text/plain; charset=utf-8", text(s, full).into_bytes())
    }
}

fn refresh(query: &str) -> u64 {
    query
        .split('&')
        .find_map(|w| w.strip_prefix("refresh=")?.parse().ok())
        .unwrap_or(2)
}

/// php-fpm's date layout: `05/Dec/2026:15:24:05 +0000` (UTC).
pub(crate) fn clf_time(us: u64) -> String {
    let secs = us / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the "days from civil"
/// algorithm run backwards; no date crate is needed for one format).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// php-fpm's pool fields, in its order, then ferrocgi's own.
fn pool_fields(s: &Snapshot) -> Vec<(&'static str, Value)> {
    let mut f: Vec<(&'static str, Value)> = vec![
        ("pool", json!(s.pool)),
        ("process manager", json!(s.manager)),
        ("start time", json!(s.start_us / 1_000_000)),
        ("start since", json!(s.since(s.start_us))),
        ("accepted conn", json!(s.accepted)),
        ("listen queue", json!(s.listen_queue)),
        ("max listen queue", json!(s.max_listen_queue)),
        ("listen queue len", json!(s.listen_queue_len)),
        ("idle processes", json!(s.idle())),
        ("active processes", json!(s.active())),
        ("total processes", json!(s.workers.len())),
        ("max active processes", json!(s.max_active)),
        ("max children reached", json!(s.max_children_reached)),
        ("slow requests", json!(s.slow)),
        ("request timeouts", json!(s.timeouts)),
        ("requests waiting", json!(s.waiting())),
        ("connections open", json!(s.conns_open)),
        ("bytes in", json!(s.bytes_in)),
        ("bytes out", json!(s.bytes_out)),
        ("failed responses", json!(s.failed)),
    ];
    const CLASSES: [&str; 6] = [
        "responses other",
        "responses 1xx",
        "responses 2xx",
        "responses 3xx",
        "responses 4xx",
        "responses 5xx",
    ];
    f.extend(CLASSES.iter().zip(s.by_class).map(|(k, n)| (*k, json!(n))));
    const RESTARTS: [&str; 4] = [
        "restarts crash",
        "restarts maxrequests",
        "restarts max_rss",
        "restarts request_timeout",
    ];
    f.extend(
        RESTARTS
            .iter()
            .zip(s.restarts)
            .map(|(k, (_, n))| (*k, json!(n))),
    );
    f
}

/// php-fpm's per-process fields, then ferrocgi's `rss`.
fn worker_fields(s: &Snapshot, w: &Worker) -> Vec<(&'static str, Value)> {
    let r = &w.row;
    let running = r.state == Some(RowState::Running);
    let duration = if running {
        s.now_us.saturating_sub(r.req_start_us)
    } else {
        r.req_duration_us
    };
    let cpu = (w.cpu * 100.0).round() / 100.0;
    let (method, uri) = if r.req_start_us == 0 {
        ("-".to_owned(), "-".to_owned())
    } else {
        (r.method.clone(), r.uri.clone())
    };
    vec![
        ("pid", json!(r.pid)),
        ("state", json!(r.state.map_or("Free", RowState::name))),
        ("start time", json!(r.start_us / 1_000_000)),
        ("start since", json!(s.since(r.start_us))),
        ("requests", json!(r.requests)),
        ("request duration", json!(duration)),
        ("request method", json!(method)),
        ("request uri", json!(uri)),
        ("content length", json!(r.content_length)),
        ("user", json!("-")),
        ("script", json!("-")),
        ("last request cpu", json!(cpu)),
        ("last request memory", json!(w.peak_rss)),
        ("rss", json!(w.rss)),
    ]
}

fn json_page(s: &Snapshot, full: bool) -> String {
    let mut m: Map<String, Value> = pool_fields(s)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    if full {
        let procs = s
            .workers
            .iter()
            .map(|w| {
                let o: Map<String, Value> = worker_fields(s, w)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                Value::Object(o)
            })
            .collect();
        m.insert("processes".to_owned(), Value::Array(procs));
    }
    Value::Object(m).to_string()
}

fn text_value(key: &str, v: &Value, start: bool) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if start && key == "start time" => {
            clf_time(n.as_u64().unwrap_or(0) * 1_000_000)
        }
        Value::Number(n) if key == "last request cpu" => {
            format!("{:.2}", n.as_f64().unwrap_or(0.0))
        }
        v => v.to_string(),
    }
}

fn text(s: &Snapshot, full: bool) -> String {
    let mut out = String::new();
    for (k, v) in pool_fields(s) {
        let _ = writeln!(out, "{:<21} {}", format!("{k}:"), text_value(k, &v, true));
    }
    if full {
        for w in &s.workers {
            out.push_str("\n************************\n");
            for (k, v) in worker_fields(s, w) {
                let _ = writeln!(out, "{:<21} {}", format!("{k}:"), text_value(k, &v, true));
            }
        }
    }
    out
}

/// A label value, escaped as the exposition format asks.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# TYPE {name} {kind}\n# HELP {name} {help}");
}

/// The pool's gauges: name, help, value.
fn pool_gauges(s: &Snapshot) -> [(&'static str, &'static str, u64); 9] {
    [
        ("ferrocgi_up", "Whether the pool answered.", 1),
        (
            "ferrocgi_start_time_seconds",
            "When the server started (Unix time).",
            s.start_us / 1_000_000,
        ),
        (
            "ferrocgi_listen_queue",
            "Connections waiting in the socket's accept queue.",
            s.listen_queue,
        ),
        (
            "ferrocgi_max_listen_queue",
            "Most connections seen waiting in the accept queue.",
            s.max_listen_queue,
        ),
        (
            "ferrocgi_listen_queue_length",
            "The accept queue's size (backlog).",
            s.listen_queue_len,
        ),
        (
            "ferrocgi_max_active_processes",
            "Most workers busy at once since the start.",
            s.max_active,
        ),
        (
            "ferrocgi_max_children",
            "Most workers the pool may have.",
            s.max_children as u64,
        ),
        (
            "ferrocgi_connections_open",
            "Connections from the web server open now.",
            s.conns_open,
        ),
        (
            "ferrocgi_requests_waiting",
            "Requests waiting for a worker inside the server.",
            s.waiting(),
        ),
    ]
}

/// The pool's counters: name, help, value.
fn pool_counters(s: &Snapshot) -> [(&'static str, &'static str, u64); 7] {
    [
        (
            "ferrocgi_accepted_connections",
            "Requests accepted (php-fpm's accepted conn).",
            s.accepted,
        ),
        (
            "ferrocgi_max_children_reached",
            "Times a worker was wanted and maxchildren were running.",
            s.max_children_reached,
        ),
        (
            "ferrocgi_slow_requests",
            "Requests that ran past slow_request.",
            s.slow,
        ),
        (
            "ferrocgi_request_timeouts",
            "Requests stopped at request_timeout.",
            s.timeouts,
        ),
        (
            "ferrocgi_failed_responses",
            "Responses cut short by an error.",
            s.failed,
        ),
        (
            "ferrocgi_request_bytes",
            "Request body bytes received.",
            s.bytes_in,
        ),
        (
            "ferrocgi_response_bytes",
            "Response body bytes sent.",
            s.bytes_out,
        ),
    ]
}

/// A family with one label beside `pool`: its metadata, then a sample per `(label, value)`
/// (a family's samples must follow its own metadata).
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    label: &'a str,
}

impl Family<'_> {
    fn write(&self, o: &mut String, pool: &str, samples: impl Iterator<Item = (String, u64)>) {
        family(o, self.name, self.kind, self.help);
        let sample = if self.kind == "counter" {
            format!("{}_total", self.name)
        } else {
            self.name.to_owned()
        };
        for (value, n) in samples {
            let label = self.label;
            let _ = writeln!(o, "{sample}{{pool=\"{pool}\",{label}=\"{value}\"}} {n}");
        }
    }
}

/// The families with one label beside `pool`: name, type, help, label.
const FAMILIES: [(&str, &str, &str, &str); 5] = [
    ("ferrocgi_processes", "gauge", "Workers by state.", "state"),
    (
        "ferrocgi_responses",
        "counter",
        "Responses by status class.",
        "class",
    ),
    (
        "ferrocgi_worker_restarts",
        "counter",
        "Workers replaced, by reason.",
        "reason",
    ),
    (
        "ferrocgi_worker_rss_bytes",
        "gauge",
        "Resident memory of each worker.",
        "pid",
    ),
    (
        "ferrocgi_worker_requests",
        "counter",
        "Requests served by each worker.",
        "pid",
    ),
];

fn openmetrics(s: &Snapshot) -> String {
    let mut o = String::new();
    let pool = label(&s.pool);
    for (name, help, v) in pool_gauges(s) {
        family(&mut o, name, "gauge", help);
        let _ = writeln!(o, "{name}{{pool=\"{pool}\"}} {v}");
    }
    for (name, help, v) in pool_counters(s) {
        family(&mut o, name, "counter", help);
        let _ = writeln!(o, "{name}_total{{pool=\"{pool}\"}} {v}");
    }
    let by_state = [("idle", s.idle()), ("active", s.active())];
    let families = FAMILIES.map(|(name, kind, help, label)| Family {
        name,
        kind,
        help,
        label,
    });
    let class = |i: usize| {
        if i == 0 {
            "other".to_owned()
        } else {
            format!("{i}xx")
        }
    };
    let pid = |w: &Worker| w.row.pid.to_string();
    let [states, classes, restarts, rss, requests] = &families;
    states.write(
        &mut o,
        &pool,
        by_state.iter().map(|(k, n)| (k.to_string(), *n as u64)),
    );
    classes.write(
        &mut o,
        &pool,
        s.by_class.iter().enumerate().map(|(i, n)| (class(i), *n)),
    );
    restarts.write(
        &mut o,
        &pool,
        s.restarts.iter().map(|(k, n)| (k.to_string(), *n)),
    );
    rss.write(&mut o, &pool, s.workers.iter().map(|w| (pid(w), w.rss)));
    requests.write(
        &mut o,
        &pool,
        s.workers.iter().map(|w| (pid(w), w.row.requests)),
    );
    histogram(&mut o, s, &pool);
    o.push_str("# EOF\n");
    o
}

fn histogram(o: &mut String, s: &Snapshot, pool: &str) {
    let name = "ferrocgi_request_duration_seconds";
    family(
        o,
        name,
        "histogram",
        "Time from a request's head to its response's end.",
    );
    let mut total = 0;
    for (i, n) in s.buckets.iter().enumerate() {
        total += n;
        let le = BUCKETS_US
            .get(i)
            .map_or("+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
        let _ = writeln!(o, "{name}_bucket{{pool=\"{pool}\",le=\"{le}\"}} {total}");
    }
    let _ = writeln!(
        o,
        "{name}_sum{{pool=\"{pool}\"}} {}",
        s.duration_sum_us as f64 / 1e6
    );
    let _ = writeln!(o, "{name}_count{{pool=\"{pool}\"}} {total}");
}

/// `<`, `>`, `&`, quotes: client-chosen URIs are shown on the page.
fn esc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(crate) fn human_us(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

pub(crate) fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

fn html(s: &Snapshot, refresh: u64) -> String {
    let tiles = [
        ("accepted", s.accepted.to_string()),
        ("active", format!("{} / {}", s.active(), s.workers.len())),
        ("idle", s.idle().to_string()),
        ("waiting", s.waiting().to_string()),
        (
            "listen queue",
            format!("{} / {}", s.listen_queue, s.listen_queue_len),
        ),
        ("max children reached", s.max_children_reached.to_string()),
        ("slow", s.slow.to_string()),
        ("timeouts", s.timeouts.to_string()),
        ("5xx", s.by_class[5].to_string()),
        (
            "in / out",
            format!("{} / {}", human_bytes(s.bytes_in), human_bytes(s.bytes_out)),
        ),
    ];
    let mut tiles_html = String::new();
    for (k, v) in tiles {
        let _ = write!(
            tiles_html,
            "<div class=tile><div class=v>{}</div><div class=k>{}</div></div>",
            esc(&v),
            esc(k)
        );
    }
    let mut rows = String::new();
    for w in &s.workers {
        rows.push_str(&worker_row(s, w));
    }
    let meta = if refresh > 0 {
        format!("<meta http-equiv=refresh content={refresh}>")
    } else {
        String::new()
    };
    HTML.replace("{meta}", &meta)
        .replace("{pool}", &esc(&s.pool))
        .replace("{manager}", s.manager)
        .replace("{uptime}", &human_secs(s.since(s.start_us)))
        .replace("{started}", &clf_time(s.start_us))
        .replace("{tiles}", &tiles_html)
        .replace("{rows}", &rows)
        .replace("{restarts}", &esc(&restarts_line(s)))
}

fn restarts_line(s: &Snapshot) -> String {
    let parts: Vec<String> = s.restarts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("worker restarts: {}", parts.join(", "))
}

fn worker_row(s: &Snapshot, w: &Worker) -> String {
    let f: Map<String, Value> = worker_fields(s, w)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let n = |k: &str| f.get(k).and_then(Value::as_u64).unwrap_or(0);
    let t = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let state = t("state");
    format!(
        "<tr><td>{}</td><td><span class=\"st {}\">{}</span></td><td>{}</td><td>{}</td><td class=uri>{} {}</td><td>{}</td><td>{:.0}%</td><td>{}</td><td>{}</td></tr>",
        n("pid"),
        state.to_lowercase(),
        esc(&state),
        n("requests"),
        human_secs(n("start since")),
        esc(&t("request method")),
        esc(&t("request uri")),
        human_us(n("request duration")),
        f.get("last request cpu").and_then(Value::as_f64).unwrap_or(0.0),
        human_bytes(n("last request memory")),
        human_bytes(n("rss")),
    )
}

const HTML: &str = include_str!("status.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_php_fpm_s_layout() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        // 2026-12-05T15:24:05Z
        assert_eq!(
            clf_time(1_796_484_245_000_000),
            "05/Dec/2026:15:24:05 +0000"
        );
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn uris_shown_in_html_cannot_add_markup() {
        assert_eq!(esc("/<script>&'\""), "/&lt;script&gt;&amp;&#39;&quot;");
    }
}
