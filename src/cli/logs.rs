//! The log: text by default (readable on a terminal; under journald without
//! timestamps and with syslog priority prefixes, which journald turns into
//! priorities so `journalctl -p warning` finds warnings), or one JSON object
//! per line with the fields of the run's span (plan, run). Every line goes
//! through [`drdrill::redact::Scrubbed`] in both formats.

use std::fmt;

use drdrill::config::LogFormat;
use drdrill::redact::Scrubbed;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the log for this process. `RUST_LOG` wins over `verbose`.
pub fn init(format: LogFormat, verbose: u8, daemon: bool) {
    // The daemon's log is its record of what it did: info by default. A
    // command is quiet unless asked; -v shows drdrill's debug lines.
    let level = match (verbose, daemon) {
        (0, false) => "warn",
        (0, true) => "info",
        (1, _) => "info,drdrill=debug",
        _ => "debug,drdrill=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let writer = Scrubbed(std::io::stderr);
    match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .init(),
        // systemd sets JOURNAL_STREAM when stderr is the journal, which stamps
        // each line itself.
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => tracing_subscriber::fmt()
            .event_format(Priority(tracing_subscriber::fmt::format().without_time().with_ansi(false)))
            .with_env_filter(filter)
            .with_writer(writer)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            // No colour codes in log files.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Prefixes each line with its syslog priority (`<3>` error .. `<7>` debug).
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
