//! What every step of a run is handed: which run it is, its scratch folder,
//! its deadline and cancel token, and how to start a process in it.
//!
//! Sources, checks and failures get a [`RunCtx`] instead of rebuilding the run
//! folder and id from a path, so every step is cancellable and every process
//! they start goes through [`crate::proc`] with the run's environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::cancel::Cancel;
use crate::proc::{Cmd, Groups};

#[derive(Clone, Debug)]
pub struct RunCtx {
    pub run_id: i64,
    /// The run's scratch folder (`DRDRILL_SCRATCH`), removed after the run.
    pub run_dir: PathBuf,
    /// When the run's timeout ends; `cancel` is set then too.
    pub deadline: Instant,
    /// Set at the deadline or on abort. Rollbacks and cleanup get one of their own.
    pub cancel: Cancel,
    /// Variables of drdrill's environment the plan passes to every process it
    /// starts (the plan's `env = [...]`); nothing else is inherited but
    /// [`crate::proc::BASE_ENV`].
    pub pass_env: Arc<Vec<String>>,
    /// Process groups that live until the run's cleanup (a service a restore started).
    pub groups: Groups,
}

impl RunCtx {
    /// A context for work outside a run (`drdrill backups verify`, tests): no
    /// deadline beyond `for_long`, never cancelled from outside.
    pub fn detached(run_dir: PathBuf, for_long: std::time::Duration) -> RunCtx {
        RunCtx {
            run_id: 0,
            run_dir,
            deadline: Instant::now() + for_long,
            cancel: Cancel::new(),
            pass_env: Arc::new(Vec::new()),
            groups: Groups::default(),
        }
    }

    /// Where a backup may keep temporary files.
    pub fn staging(&self) -> PathBuf {
        self.run_dir.join("staging")
    }

    /// Where the restore goes (`DRDRILL_RESTORE` for most kinds).
    pub fn restore_dir(&self) -> PathBuf {
        self.run_dir.join("restore")
    }

    /// `program` with the run's environment: `DRDRILL_SCRATCH`, `DRDRILL_RUN_ID`
    /// and the plan's pass-through variables.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.with_env(Cmd::new(program))
    }

    /// `sh -c script` with the run's environment.
    pub fn shell(&self, script: &str) -> Cmd {
        self.with_env(Cmd::shell(script))
    }

    fn with_env(&self, c: Cmd) -> Cmd {
        c.env("DRDRILL_SCRATCH", &self.run_dir)
            .env("DRDRILL_RUN_ID", self.run_id.to_string())
            .inherit(self.pass_env.iter())
    }
}
