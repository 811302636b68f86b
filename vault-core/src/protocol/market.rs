//! The market protocol's frames (ALPN `vault/market/1`, and the messages of a public topic),
//! sans-IO. The dialer is always the customer, under the endpoint key of an intention's
//! pseudonym (see `docs/intentions.md`): the connection itself proves the pseudonym, and the
//! listener (a seller) never needs the customer's address.
//!
//! ```text
//! customer -> Intention(signed)        seller -> Answer(kept | full | ended | refused)
//! customer -> FetchOffers              seller -> Offers(signed offers to this pseudonym)
//! customer -> Accept(acceptance, co-signature)   seller -> Answer(kept | unknown)
//! customer -> Withdraw(signed)         seller -> Answer(kept | unknown)
//! ```
//!
//! One request and its answer per bidirectional stream. Same framing as the other protocols
//! ([`framing`](super::framing)); every frame is at most [`MARKET_LIMIT`] bytes, and each
//! signed thing inside is verified by [`decode_market`], so a decoded frame never carries a
//! forged intention, offer, acceptance or withdrawal.

use crate::intent::{Poll, SignedIntention, Withdrawal, verify_acceptance_cosign};
use crate::signal::SignedSignal;
use crate::statement::{Acceptance, Offer, Signed};

use super::FrameError;

/// The ALPN of the market protocol.
pub const MARKET_ALPN: &[u8] = b"vault/market/1";
/// Largest market frame, in bytes.
pub const MARKET_LIMIT: usize = 64 * 1024;
/// Most offers in one `Offers` frame.
pub const MAX_OFFERS_PER_FRAME: usize = 16;

/// A seller's answer to what a customer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketAnswer {
    /// Taken (or already held).
    Kept,
    /// Not taken: this seller holds as many intentions from strangers as it takes.
    Full,
    /// Not taken: the intention is expired or withdrawn.
    Ended,
    /// Not taken: no such intention or offer here.
    Unknown,
    /// Not taken: it does not check out (an acceptance of another seller's offer, a
    /// pseudonym that is not the connection's).
    Refused,
}

/// A frame of the market protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarketFrame {
    /// An intention, signed by its pseudonym.
    Intention(Box<SignedIntention>),
    /// The seller's answer.
    Answer(MarketAnswer),
    /// The customer asks for the offers made to the connection's pseudonym.
    FetchOffers,
    /// Offers, each signed by its seller.
    Offers(Vec<Signed<Offer>>),
    /// The customer accepts an offer: the acceptance its identity signed, and its pseudonym's
    /// signature over the same body.
    Accept {
        /// The acceptance.
        acceptance: Box<Signed<Acceptance>>,
        /// The pseudonym's co-signature (`intent::cosign_acceptance`).
        cosign: [u8; 64],
    },
    /// The customer withdraws the intention.
    Withdraw(Withdrawal),
    /// On a topic: an intention's pseudonym asks for the offers made to it.
    Poll(Poll),
    /// On a topic: a purchase signal.
    Signal(Box<SignedSignal>),
}

const T_INTENTION: u8 = 0x41;
const T_ANSWER: u8 = 0x42;
const T_FETCH: u8 = 0x43;
const T_OFFERS: u8 = 0x44;
const T_ACCEPT: u8 = 0x45;
const T_WITHDRAW: u8 = 0x46;
const T_POLL: u8 = 0x47;
const T_SIGNAL: u8 = 0x48;

fn answer_code(a: MarketAnswer) -> u8 {
    match a {
        MarketAnswer::Kept => 0,
        MarketAnswer::Full => 1,
        MarketAnswer::Ended => 2,
        MarketAnswer::Unknown => 3,
        MarketAnswer::Refused => 4,
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Encodes a market frame body (type and payload), without the length prefix.
pub fn encode_market(frame: &MarketFrame) -> Vec<u8> {
    let mut out = Vec::new();
    match frame {
        MarketFrame::Intention(i) => {
            out.push(T_INTENTION);
            out.extend_from_slice(&i.to_bytes());
        }
        MarketFrame::Answer(a) => out.extend_from_slice(&[T_ANSWER, answer_code(*a)]),
        MarketFrame::FetchOffers => out.push(T_FETCH),
        MarketFrame::Offers(offers) => {
            out.push(T_OFFERS);
            out.extend_from_slice(&(offers.len() as u32).to_be_bytes());
            for o in offers {
                put_bytes(&mut out, &o.to_bytes());
            }
        }
        MarketFrame::Accept { acceptance, cosign } => {
            out.push(T_ACCEPT);
            out.extend_from_slice(cosign);
            out.extend_from_slice(&acceptance.to_bytes());
        }
        MarketFrame::Withdraw(w) => {
            out.push(T_WITHDRAW);
            out.extend_from_slice(&w.to_bytes());
        }
        MarketFrame::Poll(p) => {
            out.push(T_POLL);
            out.extend_from_slice(&p.to_bytes());
        }
        MarketFrame::Signal(s) => {
            out.push(T_SIGNAL);
            out.extend_from_slice(&s.to_bytes());
        }
    }
    out
}

/// Decodes a market frame body, verifying every signature in it. Never panics.
pub fn decode_market(body: &[u8]) -> Result<MarketFrame, FrameError> {
    if body.len() > MARKET_LIMIT {
        return Err(FrameError::TooLarge(body.len()));
    }
    let (&kind, rest) = body.split_first().ok_or(FrameError::Truncated)?;
    let bad = |_| FrameError::BadStatement;
    Ok(match kind {
        T_INTENTION => MarketFrame::Intention(Box::new(SignedIntention::from_bytes(rest).map_err(bad)?)),
        T_ANSWER => MarketFrame::Answer(match rest {
            [0] => MarketAnswer::Kept,
            [1] => MarketAnswer::Full,
            [2] => MarketAnswer::Ended,
            [3] => MarketAnswer::Unknown,
            [4] => MarketAnswer::Refused,
            [] => return Err(FrameError::Truncated),
            [other] => return Err(FrameError::UnknownType(*other)),
            _ => return Err(FrameError::Truncated),
        }),
        T_FETCH if rest.is_empty() => MarketFrame::FetchOffers,
        T_FETCH => return Err(FrameError::Truncated),
        T_OFFERS => {
            let count = rest.get(..4).ok_or(FrameError::Truncated)?;
            let n = u32::from_be_bytes(count.try_into().expect("4 bytes")) as usize;
            if n > MAX_OFFERS_PER_FRAME {
                return Err(FrameError::TooMany);
            }
            let mut at = &rest[4..];
            let mut offers = Vec::with_capacity(n);
            for _ in 0..n {
                let len = at.get(..4).ok_or(FrameError::Truncated)?;
                let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
                let one = at.get(4..4 + len).ok_or(FrameError::Truncated)?;
                offers.push(Signed::<Offer>::from_bytes(one).map_err(|_| FrameError::BadStatement)?);
                at = &at[4 + len..];
            }
            if !at.is_empty() {
                return Err(FrameError::Truncated);
            }
            MarketFrame::Offers(offers)
        }
        T_ACCEPT => {
            let cosign: [u8; 64] = rest.get(..64).ok_or(FrameError::Truncated)?.try_into().expect("64 bytes");
            let acceptance =
                Signed::<Acceptance>::from_bytes(&rest[64..]).map_err(|_| FrameError::BadStatement)?;
            if !verify_acceptance_cosign(&acceptance.statement().intention, acceptance.body(), &cosign) {
                return Err(FrameError::BadStatement);
            }
            MarketFrame::Accept { acceptance: Box::new(acceptance), cosign }
        }
        T_WITHDRAW => MarketFrame::Withdraw(Withdrawal::from_bytes(rest).map_err(bad)?),
        T_POLL => MarketFrame::Poll(Poll::from_bytes(rest).map_err(bad)?),
        T_SIGNAL => MarketFrame::Signal(Box::new(
            SignedSignal::from_bytes(rest).map_err(|_| FrameError::BadStatement)?,
        )),
        other => return Err(FrameError::UnknownType(other)),
    })
}

impl MarketFrame {
    /// The statement kinds this frame carries, by their names in `statement::KINDS` (see
    /// `Frame::statements_carried`).
    #[cfg(test)]
    pub(crate) fn statements_carried(&self) -> Vec<&'static str> {
        match self {
            MarketFrame::Offers(offers) if !offers.is_empty() => vec!["offer"],
            MarketFrame::Accept { .. } => vec!["acceptance"],
            MarketFrame::Intention(_)
            | MarketFrame::Answer(_)
            | MarketFrame::FetchOffers
            | MarketFrame::Offers(_)
            | MarketFrame::Withdraw(_)
            | MarketFrame::Poll(_)
            | MarketFrame::Signal(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
