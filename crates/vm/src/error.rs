//! The crate's errors: [`Error`] for VM lifecycle and operations, [`SessionError`] for guest
//! shells, [`ImageError`] for `qemu-img`.
//!
//! Every variant says what was being done or awaited, for how long where a wait was involved, and
//! keeps the underlying cause as its `#[source]`, so a binary printing the chain shows all of it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// An error from an argv source (see [`crate::ArgvSource`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Renders a duration as seconds with one decimal, for messages.
pub(crate) fn secs(d: &Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Why QEMU could not be started, could not be reached, or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter the VM needs is missing or malformed.
    #[error("VM {vm}: parameters")]
    Params {
        /// The VM's name.
        vm: String,
        /// The parameter error (with the cfg line that set the value).
        #[source]
        source: Box<params::ParamError>,
    },
    /// A parameter value is not usable (e.g. a non-numeric `guest_port`).
    #[error("VM {vm}: parameter `{key}` = {value:?}: {expected}")]
    BadParam {
        /// The VM's name.
        vm: String,
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What was expected instead.
        expected: String,
    },
    /// The params list no QMP monitor; the VM needs one to be managed.
    #[error("VM {vm}: no QMP monitor in `monitors` (set `monitor_type_<name> = qmp` on one)")]
    NoQmpMonitor {
        /// The VM's name.
        vm: String,
    },
    /// A cdrom ISO named by the params does not exist or has the wrong checksum.
    #[error("VM {vm}: cdrom {path}: {problem}")]
    Iso {
        /// The VM's name.
        vm: String,
        /// The ISO's path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Setting up a NIC's host side failed (a macvtap link, a vhost-vdpa device, passt).
    #[error("VM {vm}: NIC {nic}: {what}")]
    HostNet {
        /// The VM.
        vm: String,
        /// The NIC (its name in `nics`).
        nic: String,
        /// What failed, naming the keys and values involved.
        what: String,
    },
    /// The host lacks what the VM needs (swtpm, virtiofsd, a host device): the key and value
    /// that ask for it.
    #[error("VM {vm}: needs a host feature: {feature}")]
    HostFeature {
        /// The VM.
        vm: String,
        /// What is missing, naming the key and value.
        feature: HostFeature,
    },
    /// A daemon kvmtest starts beside QEMU (swtpm, virtiofsd) failed to start.
    #[error("VM {vm}: {what}: {problem}")]
    Daemon {
        /// The VM.
        vm: String,
        /// Which daemon (`swtpm of TPM tpm0`).
        what: String,
        /// What went wrong, with the end of its output.
        problem: String,
    },
    /// Setting up SPICE's host side failed (a generated port, the host's address, the
    /// certificates).
    #[error("VM {vm}: SPICE: {what}")]
    Spice {
        /// The VM.
        vm: String,
        /// What failed, naming the keys and values involved.
        what: String,
    },
    /// The argv source failed to produce a command line.
    #[error("VM {vm}: building the QEMU command line")]
    Argv {
        /// The VM's name.
        vm: String,
        /// The builder's error.
        #[source]
        source: BoxError,
    },
    /// Filesystem work (run directory, logs, registries) failed.
    #[error("{what}: {path}")]
    Io {
        /// What was being done.
        what: String,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// QEMU could not be spawned.
    #[error("VM {vm}: spawning {program}")]
    Spawn {
        /// The VM's name.
        vm: String,
        /// The program.
        program: String,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// QEMU printed "Could not initialize KVM" (or an equivalent) and exited.
    #[error("VM {vm}: QEMU could not initialize KVM; its output ends with:\n{stderr_tail}")]
    KvmUnavailable {
        /// The VM's name.
        vm: String,
        /// The end of QEMU's stderr.
        stderr_tail: String,
    },
    /// QEMU could not allocate guest memory from hugepages.
    #[error(
        "VM {vm}: QEMU could not allocate hugepage memory; its output ends with:\n{stderr_tail}"
    )]
    HugepageAllocation {
        /// The VM's name.
        vm: String,
        /// The end of QEMU's stderr.
        stderr_tail: String,
    },
    /// QEMU exited while something was awaited.
    #[error(
        "VM {vm}: QEMU exited ({status}) while {awaited}; its output ends with:\n{stderr_tail}"
    )]
    QemuExited {
        /// The VM's name.
        vm: String,
        /// What was being awaited.
        awaited: String,
        /// The exit status.
        status: String,
        /// The end of QEMU's stderr.
        stderr_tail: String,
    },
    /// A bounded wait ran out.
    #[error("VM {vm}: timed out after {} waiting for {awaited}; last: {last}", secs(.waited))]
    Timeout {
        /// The VM's name.
        vm: String,
        /// What was awaited.
        awaited: String,
        /// How long.
        waited: Duration,
        /// The last underlying cause or observation.
        last: String,
    },
    /// A monitor command, connection or event wait failed.
    #[error("VM {vm}: {what}")]
    Monitor {
        /// The VM's name.
        vm: String,
        /// What was being done.
        what: String,
        /// The monitor error.
        #[source]
        source: Box<monitor::Error>,
    },
    /// A QMP reply did not have the expected shape.
    #[error("VM {vm}: unexpected reply to {command}: {reply}")]
    UnexpectedReply {
        /// The VM's name.
        vm: String,
        /// The QMP command.
        command: String,
        /// The reply, as JSON.
        reply: String,
    },
    /// A guest port was asked for that no `redirs` entry forwards.
    #[error("VM {vm}: guest port {guest_port} is not redirected (redirected: {redirected:?})")]
    PortNotRedirected {
        /// The VM's name.
        vm: String,
        /// The guest port asked for.
        guest_port: u16,
        /// The guest ports that are redirected.
        redirected: Vec<u16>,
    },
    /// A NIC index beyond `nics`.
    #[error("VM {vm}: no NIC with index {index} (the VM has {count})")]
    NoSuchNic {
        /// The VM's name.
        vm: String,
        /// The index asked for.
        index: usize,
        /// How many NICs the VM has.
        count: usize,
    },
    /// The address of a tap NIC could not be found or verified.
    #[error("VM {vm}: no verified IP address for NIC {nic} ({mac}): {why}")]
    AddressUnknown {
        /// The VM's name.
        vm: String,
        /// The NIC's name.
        nic: String,
        /// Its MAC.
        mac: String,
        /// Why.
        why: String,
    },
    /// The VM has no serial console (no `serials`), or it is in use by another session.
    #[error("VM {vm}: serial console {problem}")]
    SerialConsole {
        /// The VM's name.
        vm: String,
        /// What is wrong.
        problem: String,
    },
    /// The VM has no guest-agent port (`gagent_name` names no serial), or that port cannot
    /// carry the agent.
    #[error("VM {vm}: no guest agent: {problem}")]
    GuestAgent {
        /// The VM's name.
        vm: String,
        /// What is wrong, and how the cfg adds the port.
        problem: String,
    },
    /// A migration failed on either side.
    #[error("VM {vm}: migration over {uri} failed: {why}")]
    Migration {
        /// The source VM's name.
        vm: String,
        /// The migration URI.
        uri: String,
        /// What went wrong on which side.
        why: String,
    },
    /// A VM's state could not be saved, or a VM not restored from a saved state.
    #[error("VM {vm}: saved state: {why}")]
    Snapshot {
        /// The VM.
        vm: String,
        /// What is in the way, or what failed.
        why: String,
    },
    /// A guest session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The VM's params have bad keys (every one listed, with its `file:line`).
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
}

/// Why a guest shell session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Connecting the transport failed.
    #[error("connecting {session}")]
    Connect {
        /// The session's description.
        session: String,
        /// The connect error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("{session}: I/O while {doing}")]
    Io {
        /// The session's description.
        session: String,
        /// What was being done.
        doing: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The peer closed the connection.
    #[error("{session}: closed while waiting for {awaited}; output ends with:\n{tail}")]
    Closed {
        /// The session's description.
        session: String,
        /// What was awaited.
        awaited: String,
        /// The last output received.
        tail: String,
    },
    /// The guest (or ssh) refused the username and password (or key): avocado-vt's
    /// `LoginAuthenticationError`. Not retried.
    #[error("{session}: login refused ({reason}); output ends with:\n{tail}")]
    AuthenticationFailed {
        /// The session's description.
        session: String,
        /// What refused it (`Permission denied`, `Login incorrect`).
        reason: String,
        /// The last output received.
        tail: String,
    },
    /// Nothing matching arrived in time.
    #[error("{session}: timed out after {} waiting for {awaited}; output ends with:\n{tail}", secs(.waited))]
    Timeout {
        /// The session's description.
        session: String,
        /// What was awaited.
        awaited: String,
        /// How long.
        waited: Duration,
        /// The last output received.
        tail: String,
    },
    /// A command exited with a non-zero status.
    #[error("{session}: `{command}` exited with status {status}; output:\n{output}")]
    CommandFailed {
        /// The session's description.
        session: String,
        /// The command.
        command: String,
        /// Its exit status.
        status: i32,
        /// Its output.
        output: String,
    },
    /// The status test command printed something that is not a number.
    #[error("{session}: `{status_command}` after `{command}` printed {output:?}, not a status")]
    BadStatus {
        /// The session's description.
        session: String,
        /// The command whose status was asked for.
        command: String,
        /// The status test command.
        status_command: String,
        /// What it printed.
        output: String,
    },
    /// Logging in did not succeed within the login timeout.
    #[error("logging in to {session}: gave up after {} and {attempts} attempts", secs(.waited))]
    LoginTimeout {
        /// The session's description.
        session: String,
        /// How long.
        waited: Duration,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        #[source]
        last: Box<SessionError>,
    },
    /// The session's log file could not be written.
    #[error("{session}: writing the log {path}")]
    Log {
        /// The session's description.
        session: String,
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Why a `qemu-img` operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `qemu-img` could not be run.
    #[error("running {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// `qemu-img` failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line, shell-quoted for the message.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// A parameter is missing or malformed.
    #[error("image {image}: parameters")]
    Params {
        /// The image's name.
        image: String,
        /// The parameter error.
        #[source]
        source: Box<spec::SpecError>,
    },
    /// The image is not a file kvmtest can create or remove (a network or device backend).
    #[error(
        "image {image}: {key} selects the {backend} backend: its server (and the image on it) \
         is set up by the user; kvmtest neither creates nor removes remote images (no \
         `qemu-img create` here, and never a local file in its place)"
    )]
    Backend {
        /// The image's name.
        image: String,
        /// The key that selected the backend.
        key: &'static str,
        /// The backend.
        backend: &'static str,
    },
    /// `qemu-img check` found problems.
    #[error("image {path}: `qemu-img check` found problems: {report}")]
    Corrupt {
        /// The image file.
        path: PathBuf,
        /// What `qemu-img check` printed.
        report: String,
    },
    /// Removing an image file failed.
    #[error("removing {path}")]
    Remove {
        /// The image file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// The last `n` lines of a program's output, for an error message.
pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Something the host lacks for the VM: the object and key that ask for it, the value, and what
/// is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFeature {
    /// The object (`tpm tpm0`, `filesystem fs`, `hostdev hostdev1`).
    pub object: String,
    /// The key asking for it.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What the host lacks, and how to get it.
    pub what: String,
}

impl std::fmt::Display for HostFeature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} = {:?}: {}",
            self.object, self.key, self.value, self.what
        )
    }
}
