//! Choosing the I/O backend: io_uring when the kernel allows it, epoll otherwise.

use std::fmt;
use std::str::FromStr;

use super::uring;

/// The backend a runtime runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoBackend {
    /// Linux io_uring (one ring per shard).
    Uring,
    /// epoll for sockets plus a blocking thread pool for file I/O.
    Epoll,
}

impl fmt::Display for IoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoBackend::Uring => "io_uring",
            IoBackend::Epoll => "epoll",
        })
    }
}

/// The `io.backend` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring if it works here (set-up succeeds and every required opcode is supported),
    /// otherwise epoll, logging why once.
    #[default]
    Auto,
    /// io_uring or refuse to start, naming what is missing.
    Uring,
    /// epoll even where io_uring works.
    Epoll,
}

impl FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" => Ok(BackendChoice::Uring),
            "epoll" => Ok(BackendChoice::Epoll),
            other => Err(format!(
                "unknown io backend {other:?} (expected auto, uring or epoll)"
            )),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Uring => "uring",
            BackendChoice::Epoll => "epoll",
        })
    }
}

/// Why io_uring can't be used on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UringUnavailable {
    /// `io_uring_setup` failed.
    #[error("io_uring setup failed: {0}")]
    SetupFailed(String),
    /// The kernel's io_uring lacks opcodes the runtime relies on.
    #[error("io_uring lacks required operations: {}", .0.join(", "))]
    MissingOpcodes(Vec<&'static str>),
}

/// Checks whether io_uring works here: a ring can be set up and supports every operation the
/// runtime uses.
pub fn probe_uring() -> Result<(), UringUnavailable> {
    let ring =
        uring::build_ring(8).map_err(|e| UringUnavailable::SetupFailed(explain_setup_error(&e)))?;
    let missing = uring::missing_opcodes(&ring).map_err(|e| {
        UringUnavailable::SetupFailed(format!(
            "cannot probe opcodes (IORING_REGISTER_PROBE needs Linux 5.6+): {e}"
        ))
    })?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(UringUnavailable::MissingOpcodes(missing))
    }
}

/// Names the usual causes of each set-up failure, since the bare errno rarely says.
fn explain_setup_error(e: &std::io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel (or an emulator such as qemu-user) has no io_uring",
        Some(libc::EPERM) => {
            "blocked by a seccomp profile (Docker's default) or kernel.io_uring_disabled"
        }
        Some(libc::EACCES) => {
            "kernel.io_uring_disabled=1 restricts io_uring to a group we are not in"
        }
        Some(libc::ENOMEM) => "not enough locked memory (raise RLIMIT_MEMLOCK)",
        _ => "unexpected error",
    };
    format!("{e} ({hint})")
}

/// Resolves the configured choice to the backend to run on.
pub(crate) fn resolve(choice: BackendChoice) -> Result<IoBackend, UringUnavailable> {
    match choice {
        BackendChoice::Epoll => Ok(IoBackend::Epoll),
        BackendChoice::Uring => probe_uring().map(|()| IoBackend::Uring),
        BackendChoice::Auto => match probe_uring() {
            Ok(()) => Ok(IoBackend::Uring),
            Err(reason) => {
                tracing::warn!(%reason, "io_uring unavailable; falling back to epoll");
                Ok(IoBackend::Epoll)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backend_choices() {
        assert_eq!("auto".parse(), Ok(BackendChoice::Auto));
        assert_eq!("uring".parse(), Ok(BackendChoice::Uring));
        assert_eq!("epoll".parse(), Ok(BackendChoice::Epoll));
        assert!("kqueue".parse::<BackendChoice>().is_err());
    }

    #[test]
    fn epoll_choice_never_probes() {
        assert_eq!(resolve(BackendChoice::Epoll), Ok(IoBackend::Epoll));
    }

    #[test]
    fn auto_always_resolves() {
        assert!(resolve(BackendChoice::Auto).is_ok());
    }

    #[test]
    fn explains_seccomp_denial() {
        let text = explain_setup_error(&std::io::Error::from_raw_os_error(libc::EPERM));
        assert!(text.contains("seccomp"), "{text}");
    }
}
