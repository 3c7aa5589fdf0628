//! Option parser tests: tables of words and the `Options` or the exact error line they give.

use super::table::{self, OPTIONS};
use super::*;
use std::net::Ipv6Addr;

const NO_ENV: [(&str, &str); 0] = [];

// The two kinds of command the parser serves, with the lines of the Python host's (whose own
// tests check its real commands): one with a positional APP, one like Django's runfcgi.

fn check_app(word: &str) -> Result<(), String> {
    if word.contains(['/', '-']) {
        return Err(format!("ferrocgi: APP {word:?} is not module or module:callable (example: ferrocgi --port 3033 mysite.wsgi:application)"));
    }
    Ok(())
}

fn check_dir(value: &str) -> Result<(), String> {
    non_empty(value, "path").map(drop)
}

static HOST: [HostOption; 1] = [HostOption {
    name: "pythonpath",
    metavar: "DIR[:DIR]",
    default: "none",
    example: "pythonpath=/srv/mysite",
    help: "directories put first on sys.path (may repeat)",
    list: Some(':'),
    check: check_dir,
}];

static CLI: Command = Command {
    usage: "Usage: ferrocgi [OPTIONS] APP\n",
    positional: Some(Positional {
        missing: "ferrocgi: missing APP, the WSGI application as module:callable (example: ferrocgi --port 3033 mysite.wsgi:application)",
        check: check_app,
    }),
    no_positional: "",
    detach_when_addressed: false,
    host_title: "Python options",
    host_options: &HOST,
    examples: "  ferrocgi --port 3033 mysite.wsgi:application\n",
};

static DJANGO: Command = Command {
    usage: "Usage: manage.py runfcgi [options as key=value ...]\n\nThe application comes from the WSGI_APPLICATION setting.\n",
    positional: None,
    no_positional: "runfcgi takes no APP; the application comes from the WSGI_APPLICATION setting",
    detach_when_addressed: true,
    ..CLI
};

fn parsed(args: &[&str], command: &Command) -> Result<Parsed, OptionsError> {
    parse_with_env(args, NO_ENV, command)
}

fn pythonpath(o: &Options) -> Vec<PathBuf> {
    o.host_values("pythonpath").map(PathBuf::from).collect()
}

#[track_caller]
fn django(args: &[&str]) -> Options {
    match parsed(args, &DJANGO) {
        Ok(Parsed::Run(o)) => *o,
        other => panic!("{args:?}: {other:?}"),
    }
}

#[track_caller]
fn cli(args: &[&str]) -> Options {
    match parsed(args, &CLI) {
        Ok(Parsed::Run(o)) => *o,
        other => panic!("{args:?}: {other:?}"),
    }
}

#[track_caller]
fn error(args: &[&str], command: &Command) -> String {
    match parsed(args, command) {
        Err(e) => e.to_string(),
        other => panic!("{args:?}: expected an error, got {other:?}"),
    }
}

fn app(word: &str) -> Option<String> {
    Some(word.into())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---- defaults ----

#[test]
fn defaults() {
    assert_eq!(django(&[]), Options::default());
    assert_eq!(
        cli(&["mysite.wsgi"]),
        Options {
            positional: app("mysite.wsgi"),
            ..Options::default()
        }
    );
    let d = Options::default();
    assert_eq!(d.protocol, Protocol::Fastcgi);
    assert_eq!(d.method, Method::Prefork);
    assert_eq!(
        (d.maxrequests, d.maxspare, d.minspare, d.maxchildren),
        (0, 5, 2, 50)
    );
    assert_eq!(d.workdir, PathBuf::from("/"));
    assert_eq!(d.umask, 0o022);
    assert!(!d.debug && !d.daemonize && !d.multiplex && !d.ajp_lighttpd_compat);
    assert_eq!(d.threads, 1);
    assert_eq!(d.max_body, Some(1 << 30));
    assert_eq!(d.spool_threshold, 1 << 20);
    assert_eq!(d.log_level, LogLevel::Info);
    assert_eq!(d.graceful_timeout, secs(30));
    assert_eq!(
        (d.max_connections, d.max_in_flight, d.backlog),
        (1024, 1024, 1024)
    );
    assert_eq!((d.ajp_packet_size, d.max_params_bytes), (8192, 256 * 1024));
    assert_eq!((d.request_timeout, d.slow_request), (None, None));
    assert_eq!(d.idle_timeout, Some(secs(60)));
    assert_eq!(d.read_timeout, Some(secs(60)));
    assert_eq!(d.write_timeout, Some(secs(60)));
}

/// The defaults written in `--help` are the defaults of `Options` (where they parse).
#[test]
fn help_defaults_match_default_options() {
    let mut checked = 0;
    for s in OPTIONS {
        let mut o = Options::default();
        if s.default != "none" && (s.set)(&mut o, s.default).is_ok() {
            assert_eq!(o, Options::default(), "default of {} in --help", s.name);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} defaults checked");
}

// ---- spellings ----

/// Words an option's example needs around it to be valid on its own.
fn context(name: &str) -> &'static [&'static str] {
    match name {
        "host" => &["port=3033"],
        // daemonize=false only changes something where an address made it default to true.
        "socket_mode" | "socket_owner" | "daemonize" => &["socket=/tmp/x.sock"],
        "maxspare" | "minspare" => &[],
        "maxrequests_jitter" => &["maxrequests=1000"],
        "access_log_format" => &["access_log=/tmp/access.log"],
        _ => &[],
    }
}

/// Every option, through its table example, gives the same `Options` in every spelling.
#[test]
fn every_option_every_spelling() {
    // The example's secret file must exist for its value to parse.
    let secret = std::env::temp_dir().join(format!("ferrocgi-example-{}", std::process::id()));
    std::fs::write(&secret, "s3cret\n").unwrap();
    for s in OPTIONS {
        let mut example = s.example.replace("www-data", "root");
        if s.name == "ajp_secret_file" {
            example = format!("ajp_secret_file={}", secret.display());
        }
        let (name, value) = example.split_once('=').expect("examples are name=value");
        assert_eq!(name, s.name, "example of {}", s.name);
        let spellings: Vec<Vec<String>> = vec![
            vec![format!("{name}={value}")],
            vec![format!("{}={value}", name.to_uppercase())],
            vec![format!("--{name}={value}")],
            vec![format!("--{name}"), value.to_string()],
            vec![format!("--{}", name.replace('_', "-")), value.to_string()],
            vec![format!("{}={value}", name.replace('_', "-"))],
        ];
        let mut results = Vec::new();
        for words in &spellings {
            let mut args: Vec<String> = context(s.name).iter().map(|w| w.to_string()).collect();
            args.extend(words.iter().cloned());
            let o = django(&args.iter().map(String::as_str).collect::<Vec<_>>());
            // The CLI flavor gives the same options plus its APP.
            args.push("app".into());
            let c = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(
                Options {
                    positional: None,
                    ..c
                },
                Options {
                    daemonize: false,
                    ..o.clone()
                },
                "{words:?}"
            );
            results.push(o);
        }
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "{}: {results:#?}",
            s.name
        );
        assert_ne!(
            results[0],
            django(context(s.name)),
            "example of {} changes something",
            s.name
        );
    }
}

#[test]
fn bare_boolean_words_and_flags_mean_true() {
    for s in OPTIONS.iter().filter(|s| s.kind == table::Kind::Flag) {
        let bare = django(&[s.name]);
        let flag = django(&[&table::Row::Server(s).flag()]);
        let word = django(&[&format!("{}=true", s.name)]);
        assert_eq!(bare, word, "{}", s.name);
        assert_eq!(flag, word, "{}", s.name);
        assert_ne!(word, django(&[]), "{}", s.name);
    }
}

#[test]
fn flag_followed_by_boolean_or_app() {
    assert!(!cli(&["--debug", "false", "app"]).debug);
    assert!(cli(&["--debug", "yes", "app"]).debug);
    let o = cli(&["--debug", "mysite.wsgi:app"]);
    assert!(o.debug);
    assert_eq!(o.positional, app("mysite.wsgi:app"));
    let o = cli(&["mysite.wsgi", "--debug"]);
    assert!(o.debug);
    // After `--`, everything is the APP.
    assert_eq!(cli(&["--", "debug"]).positional, app("debug"));
}

#[test]
fn later_words_win_lists_accumulate() {
    let o = django(&["port=1", "--port", "2", "method=threaded", "method=prefork"]);
    assert_eq!(o.port, Some(2));
    assert_eq!(o.method, Method::Prefork);
    let o = django(&[
        "pythonpath=/a:/b",
        "--pythonpath",
        "/c",
        "allow_from=10.0.0.0/8, 127.0.0.1",
        "reload_on=/x",
        "reload_on=/y",
    ]);
    assert_eq!(pythonpath(&o), ["/a", "/b", "/c"].map(PathBuf::from));
    assert_eq!(o.reload_on, ["/x", "/y"].map(PathBuf::from));
    assert_eq!(
        o.allow_from,
        vec![
            "10.0.0.0/8".parse::<IpNet>().unwrap(),
            "127.0.0.1".parse().unwrap()
        ]
    );
}

// ---- the classic Django FastCGI guide's words ----

/// Every command line of the two deployment guides means what the guide says.
#[test]
fn seed_command_lines() {
    // ./manage.py runfcgi method=threaded host=127.0.0.1 port=3033
    let o = django(&["method=threaded", "host=127.0.0.1", "port=3033"]);
    assert_eq!(o.method, Method::Threaded);
    assert_eq!(
        o.bind_addr(),
        Some(BindAddr::Tcp("127.0.0.1:3033".parse().unwrap()))
    );
    assert!(o.daemonize, "an address detaches, as Django did");
    assert_eq!(o.threads, 16);
    assert_eq!(o.protocol, Protocol::Fastcgi);

    // ./manage.py runfcgi method=prefork socket=/home/user/mysite.sock pidfile=django.pid
    let mut o = django(&[
        "method=prefork",
        "socket=/home/user/mysite.sock",
        "pidfile=django.pid",
    ]);
    assert_eq!(o.method, Method::Prefork);
    assert_eq!(
        o.bind_addr(),
        Some(BindAddr::Unix("/home/user/mysite.sock".into()))
    );
    assert!(o.daemonize);
    o.resolve_paths(Path::new("/home/user/mysite"));
    assert_eq!(
        o.pidfile,
        Some(PathBuf::from("/home/user/mysite/django.pid"))
    );
    assert_eq!(o.socket, Some(PathBuf::from("/home/user/mysite.sock")));

    // ./manage.py runfcgi daemonize=false socket=/tmp/mysite.sock
    let o = django(&["daemonize=false", "socket=/tmp/mysite.sock"]);
    assert!(!o.daemonize);
    assert_eq!(
        o.bind_addr(),
        Some(BindAddr::Unix("/tmp/mysite.sock".into()))
    );

    // ./manage.py runfcgi daemonize=false socket=/tmp/mysite.sock maxrequests=1
    let o = django(&[
        "daemonize=false",
        "socket=/tmp/mysite.sock",
        "maxrequests=1",
    ]);
    assert!(!o.daemonize);
    assert_eq!(o.maxrequests, 1);

    // ./manage.py runfcgi protocol=scgi
    let o = django(&["protocol=scgi"]);
    assert_eq!(o.protocol, Protocol::Scgi);
    assert_eq!(
        o.bind_addr(),
        None,
        "no address: the socket inherited as fd 0"
    );
    assert!(!o.daemonize);

    // umask 0002 so the web server's group can connect to the socket.
    let o = django(&["socket=/tmp/mysite.sock", "umask=0002"]);
    assert_eq!(o.umask, 0o002);
    assert_eq!(o.unix_socket_options().mode, Some(0o775));

    // ./manage.py runfcgi socket=$SOCKET pidfile=$PIDFILE (the restart script)
    let o = django(&[
        "socket=/home/user/mysite/mysite.sock",
        "pidfile=/home/user/mysite/mysite.pid",
    ]);
    assert!(o.daemonize);
    assert_eq!(
        o.pidfile,
        Some(PathBuf::from("/home/user/mysite/mysite.pid"))
    );

    // runfastcgi(method="threaded", daemonize="false") in mysite.fcgi, spawned by Apache.
    let o = django(&["method=threaded", "daemonize=false"]);
    assert_eq!(o.method, Method::Threaded);
    assert!(!o.daemonize);
    assert_eq!(o.bind_addr(), None);
    // Python's str(False) spelling, as kwargs may arrive.
    assert!(!django(&["daemonize=False"]).daemonize);

    // ./manage.py runfcgi help
    assert!(matches!(parsed(&["help"], &DJANGO), Ok(Parsed::Help(_))));
}

// ---- booleans ----

#[test]
fn booleans() {
    let table: &[(&str, bool)] = &[
        ("true", true),
        ("TRUE", true),
        ("yes", true),
        ("Yes", true),
        ("t", true),
        ("on", true),
        ("ON", true),
        ("1", true),
        ("false", false),
        ("False", false),
        ("no", false),
        ("NO", false),
        ("f", false),
        ("off", false),
        ("0", false),
    ];
    for (word, want) in table {
        assert_eq!(parse_bool(word), Some(*want), "{word}");
        assert_eq!(
            django(&[&format!("debug={word}")]).debug,
            *want,
            "debug={word}"
        );
        assert_eq!(
            django(&[&format!("daemonize={word}")]).daemonize,
            *want,
            "daemonize={word}"
        );
    }
    // Django's bug: debug=false turned debug on.
    assert!(!django(&["debug=false"]).debug);
    assert_eq!(parse_bool("maybe"), None);
    assert_eq!(parse_bool(""), None);
}

#[test]
fn daemonize_defaults_per_flavor() {
    let table: &[(&[&str], bool, bool)] = &[
        // (words, Django, CLI)
        (&[], false, false),
        (&["port=3033"], true, false),
        (&["host=127.0.0.1", "port=3033"], true, false),
        (&["socket=/tmp/s.sock"], true, false),
        (&["fd=3"], false, false),
        (&["socket=/tmp/s.sock", "daemonize=false"], false, false),
        (&["daemonize=true"], true, true),
        (&["daemonize"], true, true),
    ];
    for (words, want_django, want_cli) in table {
        assert_eq!(django(words).daemonize, *want_django, "django {words:?}");
        let mut w = words.to_vec();
        w.push("app");
        assert_eq!(cli(&w).daemonize, *want_cli, "cli {words:?}");
    }
}

#[test]
fn threads_rule() {
    let table: &[(&[&str], usize)] = &[
        (&[], 1),
        (&["method=prefork", "maxchildren=8"], 1),
        (&["method=prefork", "threads=4"], 4),
        (&["method=threaded"], 16),
        (&["method=threaded", "maxchildren=50"], 50),
        (&["method=threaded", "maxchildren=8", "maxspare=5"], 8),
        (&["method=threaded", "threads=4"], 4),
    ];
    for (words, want) in table {
        assert_eq!(django(words).threads, *want, "{words:?}");
    }
}

// ---- errors: exact lines ----

#[test]
fn bad_inputs_give_their_line() {
    let (cli, django) = (&CLI, &DJANGO);
    let table: &[(&[&str], &Command, &str)] = &[
        (&["port=http"], django, r#"ferrocgi: option 'port': "http" is not a port number (example: port=3033)"#),
        (&["port=70000"], django, r#"ferrocgi: option 'port': "70000" is not a port number (0 to 65535) (example: port=3033)"#),
        (&["--port"], django, "ferrocgi: option 'port' needs a value (example: port=3033)"),
        (&["port"], django, "ferrocgi: option 'port' needs a value (example: port=3033)"),
        (&["--port", "--debug"], django, "ferrocgi: option 'port' needs a value (example: port=3033)"),
        (&["host=example.com", "port=1"], django, r#"ferrocgi: option 'host': "example.com" is not an IP address (names other than localhost are not resolved) (example: host=127.0.0.1)"#),
        (&["protocol=http"], django, r#"ferrocgi: option 'protocol': "http" is not fcgi, scgi or ajp (example: protocol=scgi)"#),
        (&["method=forked"], django, r#"ferrocgi: option 'method': "forked" is not prefork or threaded (example: method=threaded)"#),
        (&["maxrequests=-1"], django, r#"ferrocgi: option 'maxrequests': "-1" is not a whole number (example: maxrequests=1000)"#),
        (&["maxchildren=0"], django, "ferrocgi: option 'maxchildren': must be at least 1 (example: maxchildren=20)"),
        (&["daemonize=maybe"], django, r#"ferrocgi: option 'daemonize': "maybe" is not a boolean (true/false, yes/no, on/off, 1/0) (example: daemonize=false)"#),
        (&["debug=2"], django, r#"ferrocgi: option 'debug': "2" is not a boolean (true/false, yes/no, on/off, 1/0) (example: debug=true)"#),
        (&["umask=089"], django, r#"ferrocgi: option 'umask': "089" is not an octal mode (example: umask=002)"#),
        (&["umask=1777"], django, r#"ferrocgi: option 'umask': "1777" is more than 777 (example: umask=002)"#),
        (&["pidfile="], django, "ferrocgi: option 'pidfile': empty path (example: pidfile=/var/run/mysite.pid)"),
        (&["socket=/tmp/s", "host=127.0.0.1", "port=3033"], django, "ferrocgi: option 'socket': cannot be combined with host or port (example: socket=/tmp/mysite.sock, or host=127.0.0.1 port=3033)"),
        (&["socket=/tmp/s", "port=3033"], django, "ferrocgi: option 'socket': cannot be combined with host or port (example: socket=/tmp/mysite.sock, or host=127.0.0.1 port=3033)"),
        (&["fd=3", "socket=/tmp/s"], django, "ferrocgi: option 'fd': cannot be combined with host, port or socket (example: fd=3, or socket=/tmp/mysite.sock, or host=127.0.0.1 port=3033)"),
        (&["fd=3", "port=3033"], django, "ferrocgi: option 'fd': cannot be combined with host, port or socket (example: fd=3, or socket=/tmp/mysite.sock, or host=127.0.0.1 port=3033)"),
        (&["host=127.0.0.1"], django, "ferrocgi: option 'host': needs port too (example: host=127.0.0.1 port=3033)"),
        (&["minspare=10"], django, "ferrocgi: option 'minspare': 10 is more than maxspare=5 (example: minspare=2 maxspare=5)"),
        (&["maxspare=60"], django, "ferrocgi: option 'maxspare': 60 is more than maxchildren=50 (example: maxspare=5 maxchildren=50)"),
        (&["maxchildren=4"], django, "ferrocgi: option 'maxspare': 5 is more than maxchildren=4 (example: maxspare=5 maxchildren=50)"),
        (&["threads=0"], django, "ferrocgi: option 'threads': must be at least 1 (example: threads=8)"),
        (&["method=threaded", "threads=64"], django, "ferrocgi: option 'threads': 64 is more than maxchildren=50, the thread limit of method=threaded (example: method=threaded threads=16 maxchildren=16)"),
        (&["ajp_packet_size=4096"], django, "ferrocgi: option 'ajp_packet_size': 4096 is not between 8192 and 65536 (example: ajp_packet_size=65536)"),
        (&["ajp_packet_size=128K"], django, "ferrocgi: option 'ajp_packet_size': 131072 is not between 8192 and 65536 (example: ajp_packet_size=65536)"),
        (&["script_name=prefix"], django, r#"ferrocgi: option 'script_name': "prefix" must start with '/' (example: script_name=/prefix)"#),
        (&["script_name=/prefix/"], django, r#"ferrocgi: option 'script_name': "/prefix/" must not end with '/' (the site root is script_name= ) (example: script_name=/prefix)"#),
        (&["script_name=/"], django, r#"ferrocgi: option 'script_name': "/" must not end with '/' (the site root is script_name= ) (example: script_name=/prefix)"#),
        (&["script_name=/a b"], django, r#"ferrocgi: option 'script_name': "/a b" must be a plain path (no '?', '#' or spaces) (example: script_name=/prefix)"#),
        (&["user=no-such-user-ferrocgi"], django, r#"ferrocgi: option 'user': no such user "no-such-user-ferrocgi" (example: user=www-data)"#),
        (&["group=no-such-group-ferrocgi"], django, r#"ferrocgi: option 'group': no such group "no-such-group-ferrocgi" (example: group=www-data)"#),
        (&["socket=/tmp/s", "socket_owner=root:no-such-group-ferrocgi"], django, r#"ferrocgi: option 'socket_owner': no such group "no-such-group-ferrocgi" (example: socket_owner=www-data:www-data)"#),
        (&["socket_mode=660"], django, "ferrocgi: option 'socket_mode': applies only with socket (example: socket=/tmp/mysite.sock socket_mode=660)"),
        (&["max_body=lots"], django, r#"ferrocgi: option 'max_body': "lots" is not a size (bytes, or a number with K, M or G) (example: max_body=100M)"#),
        (&["max_body=99999999999G"], django, r#"ferrocgi: option 'max_body': "99999999999G" is too large (example: max_body=100M)"#),
        (&["graceful_timeout=soon"], django, r#"ferrocgi: option 'graceful_timeout': "soon" is not a duration (seconds, or a number with ms, s, m or h) (example: graceful_timeout=10s)"#),
        (&["log_level=loud"], django, r#"ferrocgi: option 'log_level': "loud" is not error, warn, info, debug or trace (example: log_level=debug)"#),
        (&["allow_from=10.0.0.0/33"], django, r#"ferrocgi: option 'allow_from': "10.0.0.0/33" is not an IP address or CIDR block (example: allow_from=127.0.0.1,10.0.0.0/8)"#),
        (&["ajp_secret="], django, "ferrocgi: option 'ajp_secret': empty secret (leave the option out for none) (example: ajp_secret=s3cret)"),
        (&["max_in_flight=0"], django, "ferrocgi: option 'max_in_flight': must be at least 1 (example: max_in_flight=256)"),
        (&["backlog=0"], django, "ferrocgi: option 'backlog': must be at least 1 (example: backlog=511)"),
        (&["max_params_bytes=100"], django, "ferrocgi: option 'max_params_bytes': 100 is less than 1K (example: max_params_bytes=128K)"),
        (&["maxrequests_jitter=10"], django, "ferrocgi: option 'maxrequests_jitter': applies only with maxrequests (example: maxrequests=1000 maxrequests_jitter=100)"),
        (&["max_rss=lots"], django, r#"ferrocgi: option 'max_rss': "lots" is not a size (bytes, or a number with K, M or G) (example: max_rss=512M)"#),
        (&["prot=fcgi"], django, "ferrocgi: unknown option 'prot' (did you mean 'protocol'?)"),
        (&["--prot=fcgi"], django, "ferrocgi: unknown option '--prot' (did you mean '--protocol'?)"),
        (&["--max-bdy", "1M"], cli, "ferrocgi: unknown option '--max-bdy' (did you mean '--max-body'?)"),
        (&["maxrequest=1"], django, "ferrocgi: unknown option 'maxrequest' (did you mean 'maxrequests'?)"),
        (&["deamonize"], django, "ferrocgi: unknown option 'deamonize' (did you mean 'daemonize'?)"),
        (&["-p", "3033"], cli, "ferrocgi: unknown option '-p' (did you mean '--port'?)"),
        (&["-s", "/tmp/s"], cli, "ferrocgi: unknown option '-s' (did you mean '--socket'?)"),
        (&["-x"], cli, "ferrocgi: unknown option '-x' (did you mean '--fd'?)"),
        (&["mysite.wsgi"], django, r#"ferrocgi: unexpected argument "mysite.wsgi": runfcgi takes no APP; the application comes from the WSGI_APPLICATION setting"#),
        (&["--port", "3033"], cli, "ferrocgi: missing APP, the WSGI application as module:callable (example: ferrocgi --port 3033 mysite.wsgi:application)"),
        (&["mysite/wsgi.py"], cli, r#"ferrocgi: APP "mysite/wsgi.py" is not module or module:callable (example: ferrocgi --port 3033 mysite.wsgi:application)"#),
        (&["a", "b"], cli, r#"ferrocgi: unexpected argument "b": only one APP may be given"#),
    ];
    for (words, command, want) in table {
        assert_eq!(error(words, command), *want, "{words:?}");
    }
}

/// The first problem on the line is the one reported.
#[test]
fn first_error_wins() {
    assert_eq!(
        error(&["port=x", "bogus=1"], &DJANGO),
        "ferrocgi: unknown option 'bogus' (did you mean 'host'?)",
        "scanning (names) comes before values"
    );
    assert_eq!(
        error(&["port=x", "method=y"], &DJANGO),
        r#"ferrocgi: option 'port': "x" is not a port number (example: port=3033)"#
    );
}

#[test]
fn every_unknown_name_gets_a_suggestion() {
    for s in OPTIONS {
        let typo = format!("{}x", s.name);
        let e = parsed(&[&format!("{typo}=1")], &DJANGO).unwrap_err();
        assert_eq!(
            e,
            OptionsError::Unknown {
                given: typo,
                suggestion: s.name.to_string()
            }
        );
    }
}

// ---- help and version ----

#[test]
fn help_words() {
    for flavor in [&CLI, &DJANGO] {
        for words in [
            &["help"][..],
            &["--help"],
            &["-h"],
            &["HELP"],
            &["port=http", "help"],
            &["bogus", "--help"],
            &["--port", "3033", "-h"],
        ] {
            assert_eq!(
                parsed(words, flavor),
                Ok(Parsed::Help(help_text(flavor))),
                "{flavor:?} {words:?}"
            );
        }
        assert_eq!(parsed(&["--version"], flavor), Ok(Parsed::Version));
        assert_eq!(parsed(&["-V"], flavor), Ok(Parsed::Version));
    }
}

#[test]
fn help_lists_every_option() {
    for flavor in [&CLI, &DJANGO] {
        let h = help_text(flavor);
        for s in OPTIONS {
            assert!(
                h.contains(&format!("  {}={}", s.name, s.metavar)),
                "{flavor:?}: {}",
                s.name
            );
            assert!(
                h.contains(&table::Row::Server(s).flag()),
                "{}",
                table::Row::Server(s).flag()
            );
            assert!(
                h.contains(&table::Row::Server(s).env_var()),
                "{}",
                table::Row::Server(s).env_var()
            );
            assert!(h.contains(s.help), "{}", s.name);
            assert!(
                h.contains(&format!("[default: {}]", s.default_for(flavor))),
                "{}",
                s.name
            );
        }
        for title in [
            "Django runfcgi options",
            "ferrocgi options",
            "Process model",
            "Limits",
        ] {
            assert!(h.contains(title), "{title}");
        }
        // The command's own parts: its options under its title, its examples last.
        assert!(h.contains("\nPython options:\n  pythonpath=DIR[:DIR]  (--pythonpath, FERROCGI_PYTHONPATH)  [default: none]\n"));
        assert!(h.ends_with(&format!("\nExamples:\n{}", flavor.examples)));
    }
    assert!(help_text(&CLI).starts_with("Usage: ferrocgi [OPTIONS] APP"));
    assert!(help_text(&DJANGO).starts_with("Usage: manage.py runfcgi"));
    assert!(
        help_text(&DJANGO).contains("[default: true if host/port or socket is given, else false]")
    );
    assert_eq!(option_names().count(), OPTIONS.len());
    assert!(option_names().any(|n| n == "maxrequests"));
}

// ---- environment ----

#[test]
fn environment_is_a_fallback() {
    let env = [
        ("FERROCGI_PORT", "4000"),
        ("FERROCGI_METHOD", "threaded"),
        ("FERROCGI_MAX_BODY", "10M"),
        ("FERROCGI_DEBUG", "yes"),
        ("FERROCGI_PYTHONPATH", "/e1:/e2"),
        ("FERROCGI_NOT_AN_OPTION", "ignored"),
        ("FERROCGI_LOG_LEVEL", ""),
        ("PORT", "1"),
    ];
    let run = |args: &[&str]| match parse_with_env(args, env, &DJANGO) {
        Ok(Parsed::Run(o)) => *o,
        other => panic!("{other:?}"),
    };
    let o = run(&[]);
    assert_eq!(o.port, Some(4000));
    assert_eq!(o.method, Method::Threaded);
    assert_eq!(o.max_body, Some(10 << 20));
    assert!(o.debug);
    assert_eq!(pythonpath(&o), ["/e1", "/e2"].map(PathBuf::from));
    assert_eq!(o.log_level, LogLevel::Info, "empty means unset");
    assert!(o.daemonize, "an address from the environment counts");

    let o = run(&[
        "port=5000",
        "method=prefork",
        "debug=false",
        "pythonpath=/a",
    ]);
    assert_eq!(o.port, Some(5000));
    assert_eq!(o.method, Method::Prefork);
    assert!(!o.debug);
    assert_eq!(
        pythonpath(&o),
        vec![PathBuf::from("/a")],
        "arguments replace, not merge"
    );
    assert_eq!(o.max_body, Some(10 << 20));

    // An address in the arguments replaces the environment's address.
    let o = run(&["socket=/tmp/s.sock"]);
    assert_eq!(
        (o.port, o.socket.as_deref()),
        (None, Some(Path::new("/tmp/s.sock")))
    );
}

#[test]
fn environment_errors_name_the_variable() {
    let e = parse_with_env(["socket=/tmp/s"], [("FERROCGI_MAXSPARE", "lots")], &DJANGO);
    assert_eq!(
        e.unwrap_err().to_string(),
        r#"ferrocgi: option 'maxspare' (from FERROCGI_MAXSPARE): "lots" is not a whole number (example: maxspare=10)"#
    );
}

#[test]
fn fcgi_web_server_addrs_is_the_last_fallback_for_allow_from() {
    let env = [("FCGI_WEB_SERVER_ADDRS", "127.0.0.1,10.1.2.3")];
    let o = match parse_with_env(NO_ENV.map(|(k, _)| k), env, &DJANGO) {
        Ok(Parsed::Run(o)) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!(o.allow_from.len(), 2);
    let o = match parse_with_env(["allow_from=10.0.0.0/8"], env, &DJANGO) {
        Ok(Parsed::Run(o)) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!(o.allow_from, vec!["10.0.0.0/8".parse().unwrap()]);
}

// ---- CLI ----

#[test]
fn cli_app_is_the_positional_word_as_given() {
    // Its forms (module, module:callable) are the Python host's to check: see its tests.
    for word in [
        "mysite.wsgi",
        "mysite.wsgi:application",
        "app:make.wsgi_app",
    ] {
        assert_eq!(cli(&[word]).positional, app(word), "{word}");
    }
    assert!(
        matches!(parsed(&["a-b"], &CLI), Err(OptionsError::BadPositional(_))),
        "the command's check refuses"
    );
    // key=value words and flags mix with the APP in any order.
    let o = cli(&[
        "--protocol",
        "scgi",
        "mysite.wsgi",
        "port=3033",
        "--max-in-flight=64",
    ]);
    assert_eq!(o.protocol, Protocol::Scgi);
    assert_eq!(o.port, Some(3033));
    assert_eq!(o.max_in_flight, 64);
}

// ---- values ----

#[test]
fn octal_values() {
    for (s, want) in [
        ("022", 0o22),
        ("0o22", 0o22),
        ("22", 0o22),
        ("0002", 0o2),
        ("660", 0o660),
        ("0O777", 0o777),
        ("0", 0),
    ] {
        assert_eq!(parse_octal(s), Ok(want), "{s}");
    }
    for s in ["", "8", "0x22", "-1", "0o", "1000", "rw"] {
        assert!(parse_octal(s).is_err(), "{s}");
    }
}

#[test]
fn size_values() {
    for (s, want) in [
        ("1048576", 1 << 20),
        ("512K", 512 << 10),
        ("512k", 512 << 10),
        ("1M", 1 << 20),
        ("1MiB", 1 << 20),
        ("1mb", 1 << 20),
        ("2G", 2 << 30),
        ("0", 0),
        ("10B", 10),
    ] {
        assert_eq!(parse_size(s), Ok(want), "{s}");
    }
    for s in [
        "",
        "M",
        "1.5M",
        "-1",
        "1X",
        "18446744073709551616",
        "17179869184G",
    ] {
        assert!(parse_size(s).is_err(), "{s}");
    }
    assert_eq!(django(&["max_body=unlimited"]).max_body, None);
    assert_eq!(
        django(&["max_params_bytes=64K"])
            .server_config()
            .fastcgi
            .max_params_bytes,
        64 << 10
    );
}

#[test]
fn duration_values() {
    for (s, want) in [
        ("30", secs(30)),
        ("30s", secs(30)),
        ("500ms", Duration::from_millis(500)),
        ("2m", secs(120)),
        ("1h", secs(3600)),
        ("0", secs(0)),
    ] {
        assert_eq!(parse_duration(s), Ok(want), "{s}");
    }
    for s in ["", "s", "1.5s", "-1", "1d", "soon"] {
        assert!(parse_duration(s).is_err(), "{s}");
    }
    let o = django(&[
        "idle_timeout=0",
        "read_timeout=off",
        "request_timeout=5m",
        "slow_request=500ms",
    ]);
    assert_eq!(o.idle_timeout, None);
    assert_eq!(o.read_timeout, None);
    assert_eq!(o.request_timeout, Some(secs(300)));
    assert_eq!(o.slow_request, Some(Duration::from_millis(500)));
    assert_eq!(django(&["graceful_timeout=0"]).graceful_timeout, secs(0));
}

#[test]
fn ip_networks() {
    let net: IpNet = "10.1.2.3/8".parse().unwrap();
    assert_eq!(net.to_string(), "10.0.0.0/8");
    assert!(net.contains("10.200.0.1".parse().unwrap()));
    assert!(
        net.contains("::ffff:10.0.0.1".parse().unwrap()),
        "IPv4-mapped peers"
    );
    assert!(!net.contains("11.0.0.1".parse().unwrap()));
    let one: IpNet = "127.0.0.1".parse().unwrap();
    assert!(one.contains("127.0.0.1".parse().unwrap()));
    assert!(!one.contains("127.0.0.2".parse().unwrap()));
    let v6: IpNet = "fd00::/8".parse().unwrap();
    assert!(v6.contains("fd12::1".parse().unwrap()));
    assert!(!v6.contains("10.0.0.1".parse().unwrap()));
    let all: IpNet = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("8.8.8.8".parse().unwrap()));
    for bad in ["", "10.0.0.0/", "10.0.0/8", "::/129", "host"] {
        assert!(bad.parse::<IpNet>().is_err(), "{bad}");
    }
}

#[test]
fn hosts() {
    for (h, want) in [
        ("127.0.0.1", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ("0.0.0.0", IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ("::1", IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ("[::]", IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ] {
        assert_eq!(
            django(&[&format!("host={h}"), "port=3033"]).host,
            Some(want),
            "{h}"
        );
    }
}

#[test]
fn accounts() {
    let o = django(&[
        "user=root",
        "group=0",
        "socket=/tmp/s",
        "socket_owner=root:root",
    ]);
    assert_eq!(
        o.user,
        Some(Account {
            name: "root".into(),
            id: 0
        })
    );
    assert_eq!(
        o.group,
        Some(Account {
            name: "0".into(),
            id: 0
        })
    );
    assert_eq!(o.unix_socket_options().owner, Some((Some(0), Some(0))));
    let o = django(&["socket=/tmp/s", "socket_owner=:root"]);
    assert_eq!(o.unix_socket_options().owner, Some((None, Some(0))));
    assert!(parsed(&["socket=/tmp/s", "socket_owner=:"], &DJANGO).is_err());
}

// ---- conversions ----

#[test]
fn bind_addresses() {
    let table: &[(&[&str], Option<BindAddr>)] = &[
        (&[], None),
        (
            &["port=3033"],
            Some(BindAddr::Tcp("127.0.0.1:3033".parse().unwrap())),
        ),
        (
            &["host=0.0.0.0", "port=80"],
            Some(BindAddr::Tcp("0.0.0.0:80".parse().unwrap())),
        ),
        (
            &["host=::", "port=80"],
            Some(BindAddr::Tcp("[::]:80".parse().unwrap())),
        ),
        (
            &["socket=/run/x.sock"],
            Some(BindAddr::Unix("/run/x.sock".into())),
        ),
        (&["fd=3"], Some(BindAddr::Fd(3))),
    ];
    for (words, want) in table {
        assert_eq!(django(words).bind_addr(), *want, "{words:?}");
    }
}

#[test]
fn unix_socket_modes() {
    let table: &[(&[&str], u32)] = &[
        (&[], 0o755),
        (&["umask=002"], 0o775),
        (&["umask=077"], 0o700),
        (&["umask=002", "socket_mode=660"], 0o660),
    ];
    for (words, want) in table {
        let mut w = vec!["socket=/tmp/s.sock"];
        w.extend_from_slice(words);
        let u = django(&w).unix_socket_options();
        assert_eq!(u.mode, Some(*want), "{words:?}");
        assert_eq!(u.owner, None);
    }
}

#[test]
fn server_config_carries_the_options() {
    let o = django(&[
        "protocol=ajp13",
        "ajp_secret=s3cret",
        "ajp_packet_size=64K",
        "ajp_lighttpd_compat",
        "max_connections=10",
        "max_in_flight=20",
        "graceful_timeout=5s",
        "multiplex=on",
        "max_params_bytes=128K",
    ]);
    let c = o.server_config();
    assert_eq!(c.protocol, Protocol::Ajp13);
    assert_eq!(c.ajp_secret.as_deref(), Some(&b"s3cret"[..]));
    assert_eq!(c.ajp.max_packet, 65536);
    assert!(c.ajp.lighttpd_body_compat);
    assert_eq!((c.max_connections, c.max_in_flight), (10, 20));
    assert_eq!((c.fastcgi.max_conns, c.fastcgi.max_reqs), (10, 20));
    assert_eq!(c.graceful_timeout, secs(5));
    assert!(c.fastcgi.multiplex);
    assert_eq!(c.fastcgi.max_params_bytes, 128 << 10);
    assert_eq!(c.scgi.max_header_bytes, 128 << 10);

    let c = Options::default().server_config();
    assert_eq!(c.protocol, Protocol::Fastcgi);
    assert!(!c.fastcgi.multiplex);
    assert_eq!(c.ajp_secret, None);
    assert_eq!(c.graceful_timeout, DEFAULT_GRACEFUL_TIMEOUT);
}

#[test]
fn relative_paths_resolve_against_the_start_directory() {
    let mut o = django(&[
        "socket=run/s.sock",
        "pidfile=django.pid",
        "outlog=out.log",
        "errlog=/var/log/err.log",
        "workdir=.",
        "reload_on=mysite.fcgi",
    ]);
    o.resolve_paths(Path::new("/srv/site"));
    assert_eq!(o.socket, Some("/srv/site/run/s.sock".into()));
    assert_eq!(o.pidfile, Some("/srv/site/django.pid".into()));
    assert_eq!(o.outlog, Some("/srv/site/out.log".into()));
    assert_eq!(o.errlog, Some("/var/log/err.log".into()));
    assert_eq!(o.workdir, PathBuf::from("/srv/site/."));
    assert_eq!(o.reload_on, vec![PathBuf::from("/srv/site/mysite.fcgi")]);
}

#[test]
fn socket_path_length() {
    let long = format!("socket=/{}", "a".repeat(120));
    assert_eq!(
        error(&[&long], &DJANGO),
        "ferrocgi: option 'socket': the path is 121 bytes; Unix socket paths are limited to 107 (example: socket=/tmp/mysite.sock)"
    );
}

#[test]
fn script_name_forms() {
    assert_eq!(
        django(&["script_name=/prefix"]).script_name.as_deref(),
        Some("/prefix")
    );
    assert_eq!(django(&["script_name="]).script_name.as_deref(), Some(""));
    assert_eq!(
        django(&["script_name=/a/b"]).script_name.as_deref(),
        Some("/a/b")
    );
    assert_eq!(django(&[]).script_name, None);
}

#[test]
fn embedders_validate_too() {
    let o = Options {
        threads: 0,
        ..Options::default()
    };
    assert_eq!(
        o.validate().unwrap_err().to_string(),
        "ferrocgi: option 'threads': must be at least 1 (example: threads=8)"
    );
    assert_eq!(Options::default().validate(), Ok(()));
}

#[test]
fn ajp_secret_file_is_read_at_start_and_excludes_ajp_secret() {
    let dir = std::env::temp_dir().join(format!("ferrocgi-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "s3cret\nignored second line\n").unwrap();
    let word = format!("ajp_secret_file={}", file.display());
    let c = django(&["protocol=ajp13", &word]).server_config();
    assert_eq!(c.ajp_secret.as_deref(), Some(&b"s3cret"[..]));

    let e = error(&["protocol=ajp13", &word, "ajp_secret=other"], &DJANGO);
    assert!(
        e.contains("give ajp_secret or ajp_secret_file, not both"),
        "{e}"
    );
    std::fs::write(&file, "\n").unwrap();
    let e = error(&["protocol=ajp13", &word], &DJANGO);
    assert!(e.contains("holds no secret"), "{e}");
    let e = error(&["ajp_secret_file=/nonexistent/secret"], &DJANGO);
    assert!(e.contains("cannot read /nonexistent/secret"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn allow_from_ipv4_mapped_entries_match_ipv4_peers_and_unix_sockets_refuse_it() {
    let o = django(&[
        "port=3033",
        "allow_from=::ffff:10.0.0.1,::ffff:192.168.0.0/112",
    ]);
    let v4 = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(o.allow_from[0].contains(v4("10.0.0.1")));
    assert!(o.allow_from[0].contains(v4("::ffff:10.0.0.1")));
    assert!(!o.allow_from[0].contains(v4("10.0.0.2")));
    assert!(o.allow_from[1].contains(v4("192.168.7.9")));
    let e = error(&["socket=/tmp/x.sock", "allow_from=127.0.0.1"], &DJANGO);
    assert!(e.contains("applies to TCP peers only"), "{e}");
}

#[test]
fn recycling_options() {
    assert_eq!(django(&[]).max_rss, None);
    assert_eq!(django(&["max_rss=512M"]).max_rss, Some(512 << 20));
    for off in ["none", "off", "0"] {
        assert_eq!(django(&[&format!("max_rss={off}")]).max_rss, None, "{off}");
    }
    let o = django(&["maxrequests=100", "maxrequests_jitter=20"]);
    assert_eq!((o.maxrequests, o.maxrequests_jitter), (100, 20));
}
