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

use crate::problem::{sort_problems, Problem, ProblemKind, SpecError};

/// One key of a family: its name, its default as the cfg would write it, and what it means.
/// The declaration that readers, a future `lint` and the README key tables share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The parameter.
    pub key: &'static str,
    /// Its default, as cfg text (`None`: no default; see `meaning`).
    pub default: Option<&'static str>,
    /// What it means.
    pub meaning: &'static str,
}

/// The default shell prompt pattern (avocado-vt's for Linux guests): `[user@host dir]# `.
pub const DEFAULT_PROMPT: &str = r"^\[.*\][\#\$]\s*$";

/// The session keys, with their defaults.
pub const SESSION_KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "shell_prompt",
        default: Some(DEFAULT_PROMPT),
        meaning: "regex matched against the last line of output: the guest shell is ready",
    },
    KeyDoc {
        key: "username",
        default: Some("root"),
        meaning: "login user",
    },
    KeyDoc {
        key: "password",
        default: Some(""),
        meaning: "login password",
    },
    KeyDoc {
        key: "status_test_command",
        default: Some("echo $?"),
        meaning: "prints the exit status of the last command",
    },
    KeyDoc {
        key: "shell_linesep",
        default: Some("\\n"),
        meaning: "line separator sent after each command (`\\n` or `\\r\\n`, escapes as written)",
    },
    KeyDoc {
        key: "username_prompt",
        default: Some(r"[Ll]ogin:\s*$"),
        meaning: "regex recognising the login prompt",
    },
    KeyDoc {
        key: "password_prompt",
        default: Some(r"[Pp]assword:\s*$"),
        meaning: "regex recognising the password prompt",
    },
    KeyDoc {
        key: "login_timeout",
        default: Some("360"),
        meaning: "seconds a login may take (avocado-vt's base.cfg default)",
    },
    KeyDoc {
        key: "cmd_timeout",
        default: Some("60"),
        meaning: "seconds a guest command may take unless the test says otherwise",
    },
    KeyDoc {
        key: "guest_ready_marker",
        default: None,
        meaning: "text the guest prints on its serial console once it is up; unset: not awaited",
    },
    KeyDoc {
        key: "guest_ready_timeout",
        default: None,
        meaning: "seconds to wait for `guest_ready_marker` (default: `login_timeout`)",
    },
    KeyDoc {
        key: "shell_client",
        default: Some("telnet"),
        meaning: "how a remote login connects: telnet, nc (a raw TCP shell) or ssh",
    },
    KeyDoc {
        key: "shell_port",
        default: None,
        meaning:
            "guest TCP port of the remote shell (default: 22 for ssh, 2222 for nc, 23 for telnet)",
    },
    KeyDoc {
        key: "ssh_identity_file",
        default: None,
        meaning: "private key for ssh logins (unset: ssh's own defaults and the password)",
    },
    KeyDoc {
        key: "dhcp_lease_file",
        default: None,
        meaning: "dnsmasq lease file mapping tap NICs' MACs to their addresses",
    },
    KeyDoc {
        key: "reboot_command",
        default: Some("reboot"),
        meaning: "guest command of a shell reboot",
    },
    KeyDoc {
        key: "shutdown_command",
        default: None,
        meaning: "guest command tried first when a VM is shut down gracefully (unset: skipped)",
    },
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
}

/// Reads keys of one object, collecting problems.
struct KeyReader<'a> {
    params: &'a Params,
    object: String,
    problems: Vec<Problem>,
}

impl KeyReader<'_> {
    fn default_of(key: &str) -> &'static str {
        SESSION_KEYS
            .iter()
            .find(|k| k.key == key)
            .and_then(|k| k.default)
            .unwrap_or("")
    }

    fn problem(&mut self, key: &str, kind: ProblemKind) {
        self.problems.push(Problem {
            object: self.object.clone(),
            key: key.to_string(),
            value: self.params.get(key).map(str::to_string),
            origin: self.params.origin(key).cloned(),
            kind,
        });
    }

    /// The value, or the declared default when unset.
    fn text(&self, key: &str) -> String {
        self.params
            .get(key)
            .unwrap_or_else(|| Self::default_of(key))
            .to_string()
    }

    /// A regex, compiled multi-line; `None` (and a problem) when it does not compile.
    fn regex(&mut self, key: &str) -> Option<Regex> {
        let text = self.text(key);
        match Regex::new(&format!("(?m){text}")) {
            Ok(r) => Some(r),
            Err(e) => {
                self.problem(
                    key,
                    ProblemKind::Invalid {
                        expected: format!("a regular expression ({e})"),
                    },
                );
                None
            }
        }
    }

    /// Seconds (Python `float` syntax), unset or empty: `default`.
    fn secs(&mut self, key: &str, default: Duration) -> Duration {
        match self.params.get_f64(key) {
            Ok(None) => default,
            Ok(Some(v)) => match Duration::try_from_secs_f64(v) {
                Ok(d) => d,
                Err(_) => {
                    self.problem(
                        key,
                        ProblemKind::Invalid {
                            expected: "a number of seconds, finite and not negative".into(),
                        },
                    );
                    default
                }
            },
            Err(_) => {
                self.problem(
                    key,
                    ProblemKind::Invalid {
                        expected: "a number of seconds such as 360 or 2.5".into(),
                    },
                );
                default
            }
        }
    }
}

impl KeyReader<'_> {
    /// A non-empty value, or `None`.
    fn opt(&self, key: &str) -> Option<String> {
        self.params
            .get(key)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    fn shell_client(&mut self) -> ShellClient {
        match self.text("shell_client").as_str() {
            "telnet" => ShellClient::Telnet,
            "nc" => ShellClient::Nc,
            "ssh" => ShellClient::Ssh,
            _ => {
                self.problem(
                    "shell_client",
                    ProblemKind::Invalid {
                        expected: "a shell client (telnet, nc, ssh)".into(),
                    },
                );
                ShellClient::Telnet
            }
        }
    }

    fn port(&mut self, key: &str, default: u16) -> u16 {
        match self
            .params
            .get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => default,
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    self.problem(
                        key,
                        ProblemKind::Invalid {
                            expected: "a TCP port (1-65535)".into(),
                        },
                    );
                    default
                }
            },
        }
    }
}

/// `shell_linesep` is written `\n` or `\r\n` in cfg files.
fn unescape_linesep(s: &str) -> String {
    s.replace("\\r", "\r").replace("\\n", "\n")
}

impl SessionSpec {
    /// Reads the session keys of VM `vm` from its object params (`params.object_params(vm)`).
    ///
    /// # Errors
    /// [`SpecError::Params`] listing every bad key (a pattern that is not a regex, a duration
    /// that is not a number of seconds), in cfg order.
    pub fn read(params: &Params, vm: &str) -> Result<SessionSpec, SpecError> {
        let mut r = KeyReader {
            params,
            object: format!("vm {vm}"),
            problems: Vec::new(),
        };
        let login_timeout = r.secs("login_timeout", Duration::from_secs(360));
        let cmd_timeout = r.secs("cmd_timeout", Duration::from_secs(60));
        let ready_timeout = r.secs("guest_ready_timeout", login_timeout);
        let shell_client = r.shell_client();
        let shell_port = r.port("shell_port", shell_client.default_port());
        let prompt = r.regex("shell_prompt");
        let username_prompt = r.regex("username_prompt");
        let password_prompt = r.regex("password_prompt");
        match (prompt, username_prompt, password_prompt) {
            (Some(prompt), Some(username_prompt), Some(password_prompt))
                if r.problems.is_empty() =>
            {
                Ok(SessionSpec {
                    prompt,
                    username: r.text("username"),
                    password: r.text("password"),
                    status_test_command: r.text("status_test_command"),
                    linesep: unescape_linesep(&r.text("shell_linesep")),
                    login_timeout,
                    cmd_timeout,
                    username_prompt,
                    password_prompt,
                    ready_marker: params
                        .get("guest_ready_marker")
                        .filter(|m| !m.is_empty())
                        .map(str::to_string),
                    ready_timeout,
                    shell_client,
                    shell_port,
                    ssh_identity_file: r.opt("ssh_identity_file").map(Into::into),
                    dhcp_lease_file: r.opt("dhcp_lease_file").map(Into::into),
                    reboot_command: r.text("reboot_command"),
                    shutdown_command: r.opt("shutdown_command"),
                })
            }
            _ => {
                let mut problems = r.problems;
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

    #[test]
    fn every_read_key_is_declared_once() {
        let mut keys: Vec<&str> = SESSION_KEYS.iter().map(|k| k.key).collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
