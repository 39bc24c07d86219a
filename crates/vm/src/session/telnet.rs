//! The minimal telnet client side: strip commands from the data stream and refuse every option.
//!
//! kvmtest needs a telnet shell, not a terminal: answering `DO x` with `WONT x` and `WILL x` with
//! `DONT x` leaves the connection in the NVT default (server-side echo by the guest's shell, no
//! negotiation state to track). Subnegotiations are skipped; `IAC IAC` is a data byte 255. The
//! state survives chunk boundaries, so a command split across reads is handled.

/// Interpret As Command.
pub const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;

/// Where a command sequence split across reads stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TelnetState {
    /// Plain data.
    #[default]
    Data,
    /// After `IAC`.
    Iac,
    /// After `IAC DO|DONT|WILL|WONT`, waiting for the option byte.
    Option(u8),
    /// Inside a subnegotiation.
    Sub,
    /// After `IAC` inside a subnegotiation.
    SubIac,
}

/// Filters `input`: data bytes go to `data`, refusals to `replies`.
pub fn filter(state: &mut TelnetState, input: &[u8], data: &mut Vec<u8>, replies: &mut Vec<u8>) {
    for &b in input {
        *state = match (*state, b) {
            (TelnetState::Data, IAC) => TelnetState::Iac,
            (TelnetState::Data, _) => {
                data.push(b);
                TelnetState::Data
            }
            (TelnetState::Iac, IAC) => {
                data.push(IAC);
                TelnetState::Data
            }
            (TelnetState::Iac, DO | DONT | WILL | WONT) => TelnetState::Option(b),
            (TelnetState::Iac, SB) => TelnetState::Sub,
            (TelnetState::Iac, _) => TelnetState::Data,
            (TelnetState::Option(cmd), opt) => {
                match cmd {
                    DO => replies.extend_from_slice(&[IAC, WONT, opt]),
                    WILL => replies.extend_from_slice(&[IAC, DONT, opt]),
                    _ => {}
                }
                TelnetState::Data
            }
            (TelnetState::Sub, IAC) => TelnetState::SubIac,
            (TelnetState::Sub, _) => TelnetState::Sub,
            (TelnetState::SubIac, SE) => TelnetState::Data,
            (TelnetState::SubIac, _) => TelnetState::Sub,
        };
    }
}

/// Doubles `IAC` bytes in outgoing data.
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_options_across_chunks() {
        let mut st = TelnetState::default();
        let (mut data, mut replies) = (Vec::new(), Vec::new());
        // WILL ECHO, DO NAWS (split), a subnegotiation, an escaped 255, then text.
        filter(&mut st, &[IAC, WILL, 1, IAC, DO], &mut data, &mut replies);
        filter(
            &mut st,
            &[31, b'a', IAC, SB, 24, 1, IAC, SE, IAC, IAC, b'b'],
            &mut data,
            &mut replies,
        );
        assert_eq!(data, vec![b'a', 255, b'b']);
        assert_eq!(replies, vec![IAC, DONT, 1, IAC, WONT, 31]);
        assert_eq!(st, TelnetState::Data);
        assert_eq!(escape(&[1, 255, 2]), vec![1, 255, 255, 2]);
    }
}
