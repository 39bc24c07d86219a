//! How a test reaches a guest's shell and how long it waits: the session family of keys.
//!
//! The VM layer (logins over serial, telnet, `nc`, ssh), the runner (waiting for a guest's
//! ready marker) and the catalogue's tests all read these keys, and they used to read them
//! each on their own, with different defaults (`login_timeout` 360 s in one place, 240 s in
//! another) and bad values silently replaced by the default. [`SessionSpec::read`] is now the
//! one reading: every key with its default in [`SESSION_KEYS`], every bad value a [`Problem`]
//! naming the key, the value and the cfg `file:line` that set it, all of them at once.
//!
//! Defaults are avocado-vt's (`login_timeout = 360` in its `base.cfg`, `username = root`, the
//! `shell_prompt` of its Linux guests…). Durations are seconds as Python's `float()` reads them
//! (`360`, `2.5`, `1e3`), finite and not negative.

use std::time::Duration;

use params::Params;
use regex::Regex;

use crate::keys::{KeyDoc, Keys};
use crate::problem::{sort_problems, SpecError};

/// The default shell prompt pattern (avocado-vt's for Linux guests): `[user@host dir]# `.
pub const DEFAULT_PROMPT: &str = r"^\[.*\][\#\$]\s*$";

/// The session keys, with their defaults.
pub const SESSION_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default(
        "shell_prompt",
        DEFAULT_PROMPT,
        "regex matched against the last line of output: the guest shell is ready",
    ),
    KeyDoc::with_default("username", "root", "login user"),
    KeyDoc::with_default("password", "", "login password"),
    KeyDoc::with_default(
        "status_test_command",
        "echo $?",
        "prints the exit status of the last command",
    ),
    KeyDoc::with_default(
        "shell_linesep",
        "\\n",
        "line separator sent after each command (`\\n` or `\\r\\n`, escapes as written)",
    ),
    KeyDoc::with_default(
        "username_prompt",
        r"[Ll]ogin:\s*$",
        "regex recognising the login prompt",
    ),
    KeyDoc::with_default(
        "password_prompt",
        r"[Pp]assword:\s*$",
        "regex recognising the password prompt",
    ),
    KeyDoc::with_default(
        "login_timeout",
        "360",
        "seconds a login may take (avocado-vt's base.cfg default)",
    ),
    KeyDoc::with_default(
        "cmd_timeout",
        "60",
        "seconds a guest command may take unless the test says otherwise",
    ),
    KeyDoc::optional(
        "guest_ready_marker",
        "text the guest prints on its serial console once it is up; unset: not awaited",
    ),
    KeyDoc::optional(
        "guest_ready_timeout",
        "seconds to wait for `guest_ready_marker` (default: `login_timeout`)",
    ),
    KeyDoc::with_default(
        "shell_client",
        "telnet",
        "how a remote login connects: telnet, nc (a raw TCP shell) or ssh",
    ),
    KeyDoc::optional(
        "shell_port",
        "guest TCP port of the remote shell (default: 22 for ssh, 2222 for nc, 23 for telnet)",
    ),
    KeyDoc::optional(
        "ssh_identity_file",
        "private key for ssh logins (unset: ssh's own defaults and the password)",
    ),
    KeyDoc::optional(
        "dhcp_lease_file",
        "dnsmasq lease file mapping tap NICs' MACs to their addresses",
    ),
    KeyDoc::with_default(
        "reboot_command",
        "reboot",
        "guest command of a shell reboot",
    ),
    KeyDoc::optional(
        "shutdown_command",
        "guest command tried first when a VM is shut down gracefully (unset: skipped)",
    ),
    KeyDoc::with_default(
        "gagent_name",
        "org.qemu.guest_agent.0",
        "the serial (`serials` object) whose socket the guest agent answers on (tp-qemu's \
         `qemu_guest_agent.cfg`: a `virtserialport` of that name)",
    ),
];

/// How a remote login connects (`shell_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellClient {
    /// Telnet (the seed's default).
    Telnet,
    /// A raw TCP shell (`nc -l` in the guest).
    Nc,
    /// The system's `ssh` client.
    Ssh,
}

impl ShellClient {
    /// The name as the cfg writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ShellClient::Telnet => "telnet",
            ShellClient::Nc => "nc",
            ShellClient::Ssh => "ssh",
        }
    }

    /// The guest port when `shell_port` is unset.
    pub fn default_port(self) -> u16 {
        match self {
            ShellClient::Telnet => 23,
            ShellClient::Nc => 2222,
            ShellClient::Ssh => 22,
        }
    }
}

impl std::fmt::Display for ShellClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The session settings of one VM (read from the VM's object params).
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// `shell_prompt`, compiled multi-line.
    pub prompt: Regex,
    /// `username`.
    pub username: String,
    /// `password`.
    pub password: String,
    /// `status_test_command`.
    pub status_test_command: String,
    /// `shell_linesep`, with `\n` and `\r` escapes turned into the characters.
    pub linesep: String,
    /// `login_timeout`.
    pub login_timeout: Duration,
    /// `cmd_timeout`.
    pub cmd_timeout: Duration,
    /// `username_prompt`, compiled multi-line.
    pub username_prompt: Regex,
    /// `password_prompt`, compiled multi-line.
    pub password_prompt: Regex,
    /// `guest_ready_marker`, when set and not empty.
    pub ready_marker: Option<String>,
    /// `guest_ready_timeout`, else `login_timeout`.
    pub ready_timeout: Duration,
    /// `shell_client`.
    pub shell_client: ShellClient,
    /// `shell_port`, else the client's default.
    pub shell_port: u16,
    /// `ssh_identity_file`.
    pub ssh_identity_file: Option<std::path::PathBuf>,
    /// `dhcp_lease_file`.
    pub dhcp_lease_file: Option<std::path::PathBuf>,
    /// `reboot_command`.
    pub reboot_command: String,
    /// `shutdown_command`, when set and not empty.
    pub shutdown_command: Option<String>,
    /// `gagent_name`: the serial the guest agent listens on.
    pub agent_serial: String,
}

/// `shell_linesep` is written `\n` or `\r\n` in cfg files.
fn unescape_linesep(s: &str) -> String {
    s.replace("\\r", "\r").replace("\\n", "\n")
}

impl SessionSpec {
    /// The session keys of VM `vm` of a variant's `params` (its object view taken here).
    ///
    /// # Errors
    /// As [`SessionSpec::read`].
    pub fn of(params: &Params, vm: &str) -> Result<SessionSpec, SpecError> {
        SessionSpec::read(&params.object_params(vm), vm)
    }

    /// Reads the session keys of VM `vm` from its object params (`params.object_params(vm)`).
    ///
    /// # Errors
    /// [`SpecError::Params`] listing every bad key (a pattern that is not a regex, a duration
    /// that is not a number of seconds), in cfg order.
    pub fn read(params: &Params, vm: &str) -> Result<SessionSpec, SpecError> {
        let mut k = Keys::new(params, format!("vm {vm}"), SESSION_KEYS);
        let login_timeout = k.secs("login_timeout").unwrap_or(Duration::from_secs(360));
        let cmd_timeout = k.secs("cmd_timeout").unwrap_or(Duration::from_secs(60));
        let ready_timeout = k.secs("guest_ready_timeout").unwrap_or(login_timeout);
        let shell_client = k
            .choice(
                "shell_client",
                &[
                    ("telnet", ShellClient::Telnet),
                    ("nc", ShellClient::Nc),
                    ("ssh", ShellClient::Ssh),
                ],
            )
            .unwrap_or(ShellClient::Telnet);
        let shell_port = k.port("shell_port").unwrap_or(shell_client.default_port());
        let prompt = k.regex("shell_prompt", true);
        let username_prompt = k.regex("username_prompt", true);
        let password_prompt = k.regex("password_prompt", true);
        let spec = match (prompt, username_prompt, password_prompt) {
            (Some(prompt), Some(username_prompt), Some(password_prompt)) => Some(SessionSpec {
                prompt,
                username: k.raw("username"),
                password: k.raw("password"),
                status_test_command: k.text("status_test_command"),
                linesep: unescape_linesep(&k.text("shell_linesep")),
                login_timeout,
                cmd_timeout,
                username_prompt,
                password_prompt,
                ready_marker: k.opt("guest_ready_marker"),
                ready_timeout,
                shell_client,
                shell_port,
                ssh_identity_file: k.opt("ssh_identity_file").map(Into::into),
                dhcp_lease_file: k.opt("dhcp_lease_file").map(Into::into),
                reboot_command: k.text("reboot_command"),
                shutdown_command: k.opt("shutdown_command"),
                agent_serial: k.text("gagent_name"),
            }),
            _ => None,
        };
        // Re-tag the problems as the VM's, the error callers of this family match on.
        let problems = k.take_problems();
        match spec {
            Some(spec) if problems.is_empty() => Ok(spec),
            _ => {
                let mut problems = problems;
                sort_problems(&mut problems);
                Err(SpecError::Params {
                    vm: vm.to_string(),
                    problems,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;

    #[test]
    fn defaults_are_avocado_vts() {
        let s = SessionSpec::read(&Params::new(), "vm1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.login_timeout, Duration::from_secs(360));
        assert_eq!(s.cmd_timeout, Duration::from_secs(60));
        assert_eq!(s.ready_timeout, s.login_timeout);
        assert_eq!(s.username, "root");
        assert_eq!(s.password, "");
        assert_eq!(s.linesep, "\n");
        assert!(s.prompt.is_match("[root@guest ~]# "));
        assert!(s.ready_marker.is_none());
        assert_eq!(s.shell_client, ShellClient::Telnet);
        assert_eq!(s.shell_port, 23);
        assert_eq!(s.reboot_command, "reboot");
        assert!(s.shutdown_command.is_none());
        assert_eq!(s.agent_serial, "org.qemu.guest_agent.0");
    }

    #[test]
    fn the_shell_port_follows_the_client_unless_given() {
        let s = SessionSpec::read(&params(&[("shell_client", "ssh")]), "vm1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.shell_client, s.shell_port), (ShellClient::Ssh, 22));
        let s = SessionSpec::read(
            &params(&[("shell_client", "nc"), ("shell_port", "2323")]),
            "vm1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.shell_client, s.shell_port), (ShellClient::Nc, 2323));
        let err = SessionSpec::read(
            &params(&[("shell_client", "rsh"), ("shell_port", "0")]),
            "vm1",
        )
        .err()
        .unwrap_or_else(|| panic!("rsh and port 0 were accepted"));
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["shell_client", "shell_port"], "{err}");
    }

    #[test]
    fn values_are_read_with_python_float_syntax() {
        let s = SessionSpec::read(
            &params(&[
                ("login_timeout", "2.5"),
                ("guest_ready_marker", "READY"),
                ("shell_linesep", "\\r\\n"),
            ]),
            "vm1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.login_timeout, Duration::from_millis(2500));
        assert_eq!(s.ready_timeout, Duration::from_millis(2500));
        assert_eq!(s.ready_marker.as_deref(), Some("READY"));
        assert_eq!(s.linesep, "\r\n");
    }

    #[test]
    fn bad_values_are_all_reported_never_defaulted() {
        let err = SessionSpec::read(
            &params(&[
                ("login_timeout", "soon"),
                ("cmd_timeout", "-1"),
                ("shell_prompt", "(unclosed"),
            ]),
            "vm1",
        )
        .err()
        .unwrap_or_else(|| panic!("bad values were accepted"));
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys.len(), 3, "{err}");
        for k in ["login_timeout", "cmd_timeout", "shell_prompt"] {
            assert!(keys.contains(&k), "{k} not reported: {err}");
        }
        assert!(err.to_string().contains("\"soon\""), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_cfg_line_that_set_it() {
        let mut parser = params::Parser::new(params::ParserOptions::default());
        parser
            .parse_str("vms = vm1\nlogin_timeout = 30\ncmd_timeout = forever\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let variants = parser.finish().collect().unwrap_or_else(|e| panic!("{e}"));
        let p = variants[0].params.object_params("vm1");
        let err = SessionSpec::read(&p, "vm1")
            .err()
            .unwrap_or_else(|| panic!("cmd_timeout = forever was accepted"));
        let problem = &err.problems()[0];
        assert_eq!(problem.key, "cmd_timeout");
        assert_eq!(problem.origin.as_ref().map(|o| o.line), Some(3), "{err}");
    }
}
