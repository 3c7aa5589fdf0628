//! The Python host's words: the commands it is started by (the `ferrocgi` console script,
//! Django's runfcgi and `runfastcgi()`, `ferrocgi.serve()`), the APP they name and the option
//! that is about Python (`pythonpath`). They are rows of the server's one option table
//! ([`options::Command`]), parsed, checked and listed in `--help` like the server's own.

use ferrocgi_server::options::{self, Command, HostOption, Options, Positional};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The WSGI application of the `ferrocgi` command line: `module:callable`, or `module` for
/// the callable `application` (what Django's `wsgi.py` defines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    /// Dotted module path, e.g. `mysite.wsgi`.
    pub module: String,
    /// Attribute path inside the module, e.g. `application`.
    pub callable: String,
}

fn dotted_identifiers(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut cs = part.chars();
            matches!(cs.next(), Some(c) if c == '_' || c.is_alphabetic())
                && cs.all(|c| c == '_' || c.is_alphanumeric())
        })
}

impl FromStr for AppRef {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (m, c) = s.split_once(':').unwrap_or((s, "application"));
        if dotted_identifiers(m) && dotted_identifiers(c) {
            Ok(AppRef {
                module: m.to_string(),
                callable: c.to_string(),
            })
        } else {
            Err(())
        }
    }
}

impl fmt::Display for AppRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.callable)
    }
}

fn check_app(word: &str) -> Result<(), String> {
    word.parse::<AppRef>().map(drop).map_err(|()| {
        format!("ferrocgi: APP {word:?} is not module or module:callable (example: ferrocgi --port 3033 mysite.wsgi:application)")
    })
}

fn check_dir(value: &str) -> Result<(), String> {
    options::non_empty(value, "path").map(drop)
}

fn one_of(value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!("expected one of {}", allowed.join(", ")))
    }
}

fn check_interface(value: &str) -> Result<(), String> {
    one_of(value, &["auto", "wsgi", "asgi"])
}

fn check_lifespan(value: &str) -> Result<(), String> {
    one_of(value, &["auto", "on", "off"])
}

fn check_loop(value: &str) -> Result<(), String> {
    one_of(value, &["auto", "asyncio", "uvloop"])
}

/// `pythonpath=`: directories put first on `sys.path`; `interface=`, `lifespan=`, `loop=`:
/// how the application is called (WSGI, or ASGI on an event loop).
static HOST_OPTIONS: [HostOption; 4] = [
    HostOption {
        name: "pythonpath",
        metavar: "DIR[:DIR]",
        default: "none",
        example: "pythonpath=/srv/mysite",
        help: "directories put first on sys.path (may repeat)",
        list: Some(':'),
        check: check_dir,
    },
    HostOption {
        name: "interface",
        metavar: "auto|wsgi|asgi",
        default: "auto",
        example: "interface=asgi",
        help: "how to call the application: auto is ASGI when its call is a coroutine function (async def), else WSGI",
        list: None,
        check: check_interface,
    },
    HostOption {
        name: "lifespan",
        metavar: "auto|on|off",
        default: "auto",
        example: "lifespan=on",
        help: "ASGI lifespan startup/shutdown: auto runs it when the application supports it, on requires it",
        list: None,
        check: check_lifespan,
    },
    HostOption {
        name: "loop",
        metavar: "auto|asyncio|uvloop",
        default: "auto",
        example: "loop=asyncio",
        help: "the ASGI event loop: auto uses uvloop when it is installed",
        list: None,
        check: check_loop,
    },
];

const HOST_TITLE: &str = "Python options";

const EXAMPLES: &str = "\x20 ferrocgi --method threaded --port 3033 mysite.wsgi:application\n\
     \x20 ferrocgi mysite.asgi:application socket=/run/mysite.sock     # ASGI: Django's asgi.py, Starlette, FastAPI\n\
     \x20 ./manage.py runfcgi method=prefork socket=/home/user/mysite.sock pidfile=django.pid\n\
     \x20 runfastcgi(method=\"threaded\", daemonize=\"false\")    # in mysite.fcgi, spawned by the web server\n";

/// `ferrocgi [OPTIONS] APP`: an APP is required; `daemonize` defaults to false.
pub static CLI: Command = Command {
    usage: "Usage: ferrocgi [OPTIONS] APP\n\n\
            Serves a WSGI or ASGI application to a web server over FastCGI, SCGI or AJP13.\n\
            APP is module:callable, or module for module:application (e.g. mysite.wsgi,\n\
            mysite.asgi); an async application (ASGI 3) runs on an event loop (see interface=).\n\
            ferrocgi status ADDRESS [--watch] [--json] shows a running server's pool and workers\n\
            (it needs status_path; ferrocgi status --help says more).\n",
    positional: Some(Positional {
        missing: "ferrocgi: missing APP, the application as module:callable (example: ferrocgi --port 3033 mysite.wsgi:application)",
        check: check_app,
    }),
    no_positional: "",
    detach_when_addressed: false,
    host_title: HOST_TITLE,
    host_options: &HOST_OPTIONS,
    examples: EXAMPLES,
};

/// `manage.py runfcgi` / `runfastcgi()`: no APP (Django's settings name it); `daemonize`
/// unset means true iff host/port or socket is given.
pub static DJANGO: Command = Command {
    usage: "Usage: manage.py runfcgi [options as key=value ...]\n\n\
            Serves this Django project to a web server over FastCGI, SCGI or AJP13 (ferrocgi).\n\
            The application comes from the WSGI_APPLICATION setting; with interface=asgi, from\n\
            ASGI_APPLICATION, else Django's own ASGI handler.\n",
    positional: None,
    no_positional: "runfcgi takes no APP; the application comes from the WSGI_APPLICATION setting",
    detach_when_addressed: true,
    host_title: HOST_TITLE,
    host_options: &HOST_OPTIONS,
    examples: EXAMPLES,
};

/// `ferrocgi.serve(app, bind, **options)`: the application is given in code; no APP,
/// `daemonize` defaults to false.
pub static EMBEDDED: Command = Command {
    usage: "Usage: ferrocgi.serve(app, bind, name=value, ...)\n\n\
            Serves the WSGI or ASGI application given in code to a web server over FastCGI, SCGI\n\
            or AJP13.\n",
    positional: None,
    no_positional: "the application is given in code, not as a word",
    detach_when_addressed: false,
    host_title: HOST_TITLE,
    host_options: &HOST_OPTIONS,
    examples: "",
};

/// The command for a flavour name of `_ferrocgi.main` / `check` / `help_text`.
pub fn by_name(name: &str) -> Option<&'static Command> {
    match name {
        "cli" => Some(&CLI),
        "django" => Some(&DJANGO),
        "embedded" => Some(&EMBEDDED),
        _ => None,
    }
}

/// The APP the words named, if any (checked by the parser already).
pub fn app(opts: &Options) -> Option<AppRef> {
    opts.positional.as_deref().and_then(|w| w.parse().ok())
}

/// How the application is called (`interface=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// Decided by the application's call (a coroutine function is ASGI).
    Auto,
    /// PEP 3333.
    Wsgi,
    /// ASGI 3.
    Asgi,
}

/// The last value of a single-valued host option, or `default`.
fn host_value<'a>(opts: &'a Options, name: &'a str, default: &'a str) -> &'a str {
    opts.host_values(name).last().unwrap_or(default)
}

/// `interface=`.
pub fn interface(opts: &Options) -> Interface {
    match host_value(opts, "interface", "auto") {
        "wsgi" => Interface::Wsgi,
        "asgi" => Interface::Asgi,
        _ => Interface::Auto,
    }
}

/// `lifespan=`.
pub fn lifespan(opts: &Options) -> crate::asgi::LifespanMode {
    crate::asgi::LifespanMode::parse(host_value(opts, "lifespan", "auto"))
        .unwrap_or(crate::asgi::LifespanMode::Auto)
}

/// `loop=`.
pub fn loop_kind(opts: &Options) -> crate::asgi::LoopKind {
    crate::asgi::LoopKind::parse(host_value(opts, "loop", "auto"))
        .unwrap_or(crate::asgi::LoopKind::Auto)
}

/// `pythonpath`, relative directories taken from `base` (where ferrocgi was started).
pub fn pythonpath(opts: &Options, base: Option<&Path>) -> Vec<PathBuf> {
    opts.host_values("pythonpath")
        .map(|d| match base {
            Some(b) if Path::new(d).is_relative() => b.join(d),
            _ => PathBuf::from(d),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrocgi_server::options::{parse_with_env, OptionsError, Parsed};

    const NO_ENV: [(&str, &str); 0] = [];

    fn run(args: &[&str], command: &Command) -> Result<Options, OptionsError> {
        match parse_with_env(args, NO_ENV, command)? {
            Parsed::Run(o) => Ok(*o),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn app_ref(module: &str, callable: &str) -> Option<AppRef> {
        Some(AppRef {
            module: module.into(),
            callable: callable.into(),
        })
    }

    #[test]
    fn the_cli_takes_module_or_module_colon_callable() {
        for (word, module, callable) in [
            ("mysite.wsgi", "mysite.wsgi", "application"),
            ("mysite.wsgi:application", "mysite.wsgi", "application"),
            ("app:make.wsgi_app", "app", "make.wsgi_app"),
            ("_priv", "_priv", "application"),
            ("mysite.wsgi:app", "mysite.wsgi", "app"),
            ("app:application", "app", "application"),
            ("pkg.mod:obj.attr", "pkg.mod", "obj.attr"),
            ("_priv:_app", "_priv", "_app"),
        ] {
            let o = run(&[word, "port=3033"], &CLI).unwrap();
            assert_eq!(app(&o), app_ref(module, callable), "{word}");
        }
        // After `--`, a word that is an option's name is the APP.
        let o = run(&["--", "debug"], &CLI).unwrap();
        assert_eq!(app(&o), app_ref("debug", "application"));
    }

    #[test]
    fn a_bad_app_gets_the_one_line_error() {
        for word in [
            "1app",
            "a:",
            ":b",
            "a..b",
            "a:b:c",
            "a-b",
            "my-site.wsgi",
            "mysite/wsgi.py",
        ] {
            let e = run(&[word], &CLI).unwrap_err();
            assert!(matches!(e, OptionsError::BadPositional(_)), "{word}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!("ferrocgi: APP {word:?} is not module or module:callable (example: ferrocgi --port 3033 mysite.wsgi:application)")
            );
        }
    }

    #[test]
    fn the_cli_needs_an_app_and_django_refuses_one() {
        assert_eq!(
            run(&["port=3033"], &CLI).unwrap_err().to_string(),
            "ferrocgi: missing APP, the application as module:callable (example: ferrocgi --port 3033 mysite.wsgi:application)"
        );
        assert_eq!(
            run(&["mysite.wsgi:application"], &DJANGO).unwrap_err().to_string(),
            "ferrocgi: unexpected argument \"mysite.wsgi:application\": runfcgi takes no APP; the application comes from the WSGI_APPLICATION setting"
        );
        assert!(run(&["app:application"], &EMBEDDED).is_err());
    }

    #[test]
    fn pythonpath_accumulates_and_is_made_absolute_against_the_start_dir() {
        let o = run(
            &["pythonpath=lib:/a", "--pythonpath", "/b", "pythonpath=c"],
            &DJANGO,
        )
        .unwrap();
        assert_eq!(
            pythonpath(&o, Some(Path::new("/srv/site"))),
            ["/srv/site/lib", "/a", "/b", "/srv/site/c"].map(PathBuf::from)
        );
    }

    #[test]
    fn pythonpath_from_the_environment_only_when_the_words_give_none() {
        let env = [("FERROCGI_PYTHONPATH", "/e1:/e2")];
        let from_env = |args: &[&str]| match parse_with_env(args, env, &DJANGO) {
            Ok(Parsed::Run(o)) => pythonpath(&o, None),
            other => panic!("{other:?}"),
        };
        assert_eq!(from_env(&[]), ["/e1", "/e2"].map(PathBuf::from));
        assert_eq!(from_env(&["pythonpath=/a"]), [PathBuf::from("/a")]);
    }

    #[test]
    fn help_lists_pythonpath_under_the_python_options() {
        for command in [&CLI, &DJANGO, &EMBEDDED] {
            let h = options::help_text(command);
            assert!(h.contains("Python options:\n  pythonpath=DIR[:DIR]  (--pythonpath, FERROCGI_PYTHONPATH)  [default: none]"), "{h}");
        }
        for command in [&CLI, &DJANGO] {
            let h = options::help_text(command);
            assert!(h.contains("ferrocgi --method threaded --port 3033 mysite.wsgi:application"));
            assert!(h.contains("./manage.py runfcgi method=prefork"));
            assert!(h.contains("runfastcgi(method=\"threaded\", daemonize=\"false\")"));
        }
        assert!(options::help_text(&CLI).starts_with("Usage: ferrocgi [OPTIONS] APP"));
        assert!(options::help_text(&DJANGO).contains("WSGI_APPLICATION setting"));
    }
}
