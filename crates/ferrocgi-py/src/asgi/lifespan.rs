//! ASGI lifespan: `lifespan.startup` before the process serves, `lifespan.shutdown` when it
//! stops (asgiref's lifespan protocol).
//!
//! `lifespan=auto` treats an application that raises before answering the startup event as
//! one without lifespan support (Django's `ASGIHandler` raises for any scope but `http`), and
//! serves without it; `lifespan=on` makes that a start-up error; `off` never calls it.

use super::call::{resolve, Done};
use super::LoopCtx;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::{Arc, Mutex};
use tracing::{error, info};

/// `lifespan=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run it if the application supports it.
    Auto,
    /// The application must support it.
    On,
    /// Never.
    Off,
}

impl Mode {
    /// The option's value.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "auto" => Some(Mode::Auto),
            "on" => Some(Mode::On),
            "off" => Some(Mode::Off),
            _ => None,
        }
    }
}

/// How a phase ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Complete,
    /// `lifespan.*.failed`, with its message.
    Failed(String),
    /// The application raised (or returned) without answering.
    Raised(String),
}

#[derive(Default)]
struct State {
    /// Events not yet received: startup, then shutdown once asked.
    pending: Vec<&'static str>,
    waiter: Option<Py<PyAny>>,
    startup: Option<Outcome>,
    shutdown: Option<Outcome>,
    /// Resolved when the current phase has an outcome (wakes `run_until_complete`).
    phase_done: Option<Py<PyAny>>,
    task_done: bool,
}

/// One process's lifespan conversation with the application.
pub(crate) struct Lifespan {
    state: Mutex<State>,
    ctx: Arc<LoopCtx>,
}

impl Lifespan {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self, py: Python<'_>, st: &mut State) -> PyResult<()> {
        match st.phase_done.take() {
            Some(fut) => resolve(py, &fut, py.None().bind(py)),
            None => Ok(()),
        }
    }

    fn deliver(&self, py: Python<'_>, st: &mut State) -> PyResult<()> {
        if st.pending.is_empty() {
            return Ok(());
        }
        if let Some(fut) = st.waiter.take() {
            let msg = event(py, st.pending.remove(0))?;
            resolve(py, &fut, msg.as_any())?;
        }
        Ok(())
    }
}

fn event<'py>(py: Python<'py>, kind: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("type", kind)?;
    Ok(d)
}

#[pyclass(module = "ferrocgi._ferrocgi", name = "LifespanReceive", frozen)]
struct Receive(Arc<Lifespan>);

#[pymethods]
impl Receive {
    fn __call__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut st = self.0.lock();
        if !st.pending.is_empty() {
            let msg = event(py, st.pending.remove(0))?;
            return Ok(Bound::new(py, Done::with(msg.into_any().unbind()))?.into_any());
        }
        let fut = self.0.ctx.create_future(py)?;
        st.waiter = Some(fut.clone().unbind());
        Ok(fut)
    }
}

#[pyclass(module = "ferrocgi._ferrocgi", name = "LifespanSend", frozen)]
struct Send(Arc<Lifespan>);

#[pymethods]
impl Send {
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind: String = message
            .get_item("type")?
            .ok_or_else(|| PyValueError::new_err("lifespan message without a 'type' key"))?
            .extract()?;
        let text = || -> PyResult<String> {
            Ok(match message.get_item("message")? {
                Some(m) => m.extract()?,
                None => String::new(),
            })
        };
        let mut st = self.0.lock();
        let (slot, outcome) = match kind.as_str() {
            "lifespan.startup.complete" => (&mut st.startup, Outcome::Complete),
            "lifespan.startup.failed" => (&mut st.startup, Outcome::Failed(text()?)),
            "lifespan.shutdown.complete" => (&mut st.shutdown, Outcome::Complete),
            "lifespan.shutdown.failed" => (&mut st.shutdown, Outcome::Failed(text()?)),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unexpected ASGI message type {other:?} for the lifespan scope"
                )))
            }
        };
        if slot.is_some() {
            return Err(PyRuntimeError::new_err(format!("{kind} sent twice")));
        }
        *slot = Some(outcome);
        self.0.wake(py, &mut st)?;
        Ok(self.0.ctx.done_none.bind(py).clone())
    }
}

/// The lifespan task ended: an answer it never gave is an error (or, under `auto`, no
/// support).
#[pyclass(module = "ferrocgi._ferrocgi", name = "LifespanDone", frozen)]
struct TaskDone(Arc<Lifespan>);

#[pymethods]
impl TaskDone {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let why = if task.call_method0("cancelled")?.is_truthy()? {
            "cancelled".to_string()
        } else {
            match task.call_method0("exception")? {
                e if e.is_none() => "returned".to_string(),
                e => format!("{}: {e}", e.get_type().name()?),
            }
        };
        let mut st = self.0.lock();
        st.task_done = true;
        if st.startup.is_none() {
            st.startup = Some(Outcome::Raised(why));
        } else if st.shutdown.is_none() && st.phase_done.is_some() {
            st.shutdown = Some(Outcome::Raised(why));
        }
        self.0.wake(py, &mut st)
    }
}

/// A running lifespan, for the shutdown.
pub(crate) struct Running {
    lifespan: Arc<Lifespan>,
}

/// Runs the startup phase on `loop_` (not running yet). `Ok(None)`: no lifespan (off, or not
/// supported under auto); `Err`: the start-up failed, with the message to stop with.
pub(crate) fn startup(
    py: Python<'_>,
    ctx: &Arc<LoopCtx>,
    app: &Bound<'_, PyAny>,
    mode: Mode,
    state: &Bound<'_, PyDict>,
) -> Result<Option<Running>, String> {
    if mode == Mode::Off {
        return Ok(None);
    }
    let lifespan = Arc::new(Lifespan {
        state: Mutex::new(State {
            pending: vec!["lifespan.startup"],
            ..State::default()
        }),
        ctx: ctx.clone(),
    });
    let outcome = run_startup(py, ctx, app, &lifespan, state).map_err(|e| {
        e.print(py);
        format!("lifespan startup could not run: {e}")
    })?;
    match outcome {
        Outcome::Complete => {
            info!("lifespan startup complete");
            Ok(Some(Running { lifespan }))
        }
        Outcome::Failed(m) => Err(format!("the application's lifespan startup failed: {m}")),
        Outcome::Raised(why) if mode == Mode::Auto => {
            info!("the application does not support the lifespan protocol ({why}); serving without it");
            Ok(None)
        }
        Outcome::Raised(why) => Err(format!(
            "lifespan=on, but the application did not complete lifespan startup ({why})"
        )),
    }
}

fn run_startup(
    py: Python<'_>,
    ctx: &Arc<LoopCtx>,
    app: &Bound<'_, PyAny>,
    lifespan: &Arc<Lifespan>,
    state: &Bound<'_, PyDict>,
) -> PyResult<Outcome> {
    let scope = PyDict::new(py);
    scope.set_item("type", "lifespan")?;
    let asgi = PyDict::new(py);
    asgi.set_item("version", "3.0")?;
    asgi.set_item("spec_version", "2.0")?;
    scope.set_item("asgi", asgi)?;
    scope.set_item("state", state)?;
    let done = ctx.create_future(py)?;
    lifespan.lock().phase_done = Some(done.clone().unbind());
    let receive = Bound::new(py, Receive(lifespan.clone()))?;
    let send = Bound::new(py, Send(lifespan.clone()))?;
    // An application that cannot even be called with the lifespan scope (a WSGI callable, a
    // sync one) has no lifespan support either.
    let started = app
        .call1((scope, receive, send))
        .and_then(|coro| ctx.loop_.bind(py).call_method1("create_task", (coro,)));
    let task = match started {
        Ok(task) => task,
        Err(e) => {
            let name = e.get_type(py).name()?;
            return Ok(Outcome::Raised(format!("{name}: {}", e.value(py))));
        }
    };
    task.call_method1(
        "add_done_callback",
        (Bound::new(py, TaskDone(lifespan.clone()))?,),
    )?;
    ctx.loop_
        .bind(py)
        .call_method1("run_until_complete", (done,))?;
    let outcome = lifespan.lock().startup.clone();
    Ok(outcome.unwrap_or(Outcome::Raised("no answer".into())))
}

impl Running {
    /// Sends `lifespan.shutdown` and runs the loop until the application answers, at most
    /// `timeout`.
    pub(crate) fn shutdown(self, py: Python<'_>, timeout: std::time::Duration) {
        if let Err(e) = self.run_shutdown(py, timeout) {
            error!("lifespan shutdown: {e}");
        }
    }

    fn run_shutdown(&self, py: Python<'_>, timeout: std::time::Duration) -> PyResult<()> {
        let ctx = &self.lifespan.ctx;
        let done = ctx.create_future(py)?;
        {
            let mut st = self.lifespan.lock();
            if st.task_done {
                return Ok(());
            }
            st.phase_done = Some(done.clone().unbind());
            st.pending.push("lifespan.shutdown");
            self.lifespan.deliver(py, &mut st)?;
        }
        let asyncio = py.import("asyncio")?;
        let wait = asyncio.call_method1("wait_for", (done, timeout.as_secs_f64()))?;
        if let Err(e) = ctx
            .loop_
            .bind(py)
            .call_method1("run_until_complete", (wait,))
        {
            // asyncio's own TimeoutError (the builtin one from Python 3.11 on).
            if e.is_instance(py, &asyncio.getattr("TimeoutError")?) {
                error!(
                    "lifespan shutdown did not complete within {} s",
                    timeout.as_secs()
                );
                return Ok(());
            }
            return Err(e);
        }
        match self.lifespan.lock().shutdown.clone() {
            Some(Outcome::Complete) => info!("lifespan shutdown complete"),
            Some(Outcome::Failed(m)) => error!("the application's lifespan shutdown failed: {m}"),
            Some(Outcome::Raised(why)) => error!("lifespan shutdown: the application {why}"),
            None => {}
        }
        Ok(())
    }
}
