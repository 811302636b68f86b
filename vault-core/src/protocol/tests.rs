//! The frames' round trips, known answers and decoder robustness.

use super::*;
use crate::grant::Grant;
use crate::identity::{DeviceKey, Identity};
use proptest::prelude::*;

fn sample_frames() -> Vec<Frame> {
    let alice = Identity::from_secret_bytes(&[3; 32]);
    let shop = Identity::from_secret_bytes(&[4; 32]);
    let device = DeviceKey::from_secret_bytes(&[5; 32]);
    let grant = Signed::sign(
        Grant {
            id: GrantId::from_raw(&[7; 10]).unwrap(),
            issuer: alice.public(),
            audience: shop.public(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            issued_at: 1_800_000_000,
            expires_at: None,
            prices: true,
            request: None,
        },
        &alice,
    )
    .unwrap();
    let revocation = Signed::sign(
        Revocation { grant: grant.statement().id, issuer: alice.public(), revoked_at: 1_800_000_100 },
        &alice,
    )
    .unwrap();
    let receipt = Signed::sign(
        ErasureReceipt {
            grant: grant.statement().id,
            issuer: alice.public(),
            grantee: shop.public(),
            erased_at: 1_800_000_200,
            device: None,
        },
        &shop,
    )
    .unwrap();
    let receipt_by_device = Signed::sign(
        ErasureReceipt {
            grant: grant.statement().id,
            issuer: alice.public(),
            grantee: shop.public(),
            erased_at: 1_800_000_200,
            device: Some(DeviceKey::from_secret_bytes(&[6; 32]).public()),
        },
        &shop,
    )
    .unwrap();
    let roster = Signed::sign(
        DeviceRoster {
            identity: alice.public(),
            issued_at: 1_800_000_400,
            active: vec![crate::roster::RosterDevice {
                device: device.public(),
                addrs: vec!["127.0.0.1:4433".parse().unwrap()],
                name: None,
            }],
            removed: vec![crate::roster::RemovedDevice {
                device: DeviceKey::from_secret_bytes(&[6; 32]).public(),
                removed_at: 1_800_000_350,
                name: None,
            }],
        },
        &alice,
    )
    .unwrap();
    let notice = Signed::sign(
        BreachNotice {
            id: NoticeId::from_raw(&[11; 10]).unwrap(),
            seller: shop.public(),
            customer: alice.public(),
            since: 1_800_000_000,
            until: 1_800_000_500,
            fields: vec!["profile.email".parse().unwrap()],
            grants: vec![grant.statement().id],
            text: "a copy of our order database was taken".into(),
            issued_at: 1_800_000_600,
        },
        &shop,
    )
    .unwrap();
    let request_id = RequestId::from_raw(&[9; 10]).unwrap();
    let request = Signed::sign(
        ConsentRequest {
            id: request_id,
            requester: shop.public(),
            holder: alice.public(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            duration: Some(90 * 86_400),
            prices: false,
            made_at: 1_800_000_000,
            name: None,
            reply_to: None,
        },
        &shop,
    )
    .unwrap();
    let denial = Signed::sign(
        Denial {
            request: request_id,
            holder: alice.public(),
            requester: shop.public(),
            reason: Some("not now".into()),
            denied_at: 1_800_000_300,
        },
        &alice,
    )
    .unwrap();
    vec![
        Frame::Hello(alice.certify(device.public())),
        Frame::ListShares,
        Frame::Shares {
            live: vec![grant.clone()],
            ended: vec![
                Ended::Revoked(revocation.clone()),
                Ended::Expired(GrantId::from_raw(&[8; 10]).unwrap()),
            ],
        },
        Frame::Ended(Ended::Revoked(revocation)),
        Frame::Erased(receipt),
        Frame::Open(grant.statement().id),
        Frame::Sync(vec![1, 2, 3]),
        Frame::Refused,
        Frame::Request(Box::new(request)),
        Frame::RequestAck { request: request_id, accepted: true },
        Frame::Denied(denial),
        Frame::Sync(encode_sync_body(3, &[0x42, 1, 2])),
        Frame::Offer(Ticket::new(
            alice.certify(device.public()),
            vec!["127.0.0.1:4433".parse().unwrap(), "[::1]:4433".parse().unwrap()],
        )),
        Frame::OfferAck,
        Frame::KeyEvents({
            let next = Identity::from_secret_bytes(&[30; 32]);
            let e0 = KeyEvent::inception(&alice, &next.public(), 1_800_000_000);
            let e1 = KeyEvent::rotation(
                &e0,
                &next,
                &Identity::from_secret_bytes(&[31; 32]).public(),
                1_800_000_400,
            );
            vec![e0, e1]
        }),
        // Statements that came later: an erasure receipt naming the grantee's device, a
        // device roster (as peers get it: no names) and a breach notice with its answer.
        Frame::Erased(receipt_by_device),
        Frame::Roster(roster),
        Frame::Notice(notice),
        Frame::NoticeAck { notice: NoticeId::from_raw(&[11; 10]).unwrap(), kept: true },
    ]
}

#[test]
fn frames_roundtrip() {
    for frame in sample_frames() {
        assert_eq!(decode(&encode(&frame)).unwrap(), frame);
    }
}

/// Known-answer fixture: the wire format of every frame type, kept stable.
#[test]
fn frames_known_answer() {
    let text: String = sample_frames()
        .iter()
        .map(|f| encode(f).iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect();
    let expected = include_str!("../../tests/fixtures/frames-v1.txt");
    assert_eq!(text, expected, "the frame encoding changed");
}

#[test]
fn tampered_statements_are_refused_at_decode() {
    let frames = sample_frames();
    let mut shares = encode(&frames[2]);
    // Flip a byte inside the grant body: the signature no longer verifies.
    shares[30] ^= 1;
    assert!(decode(&shares).is_err());
    assert_eq!(decode(&[99]), Err(FrameError::UnknownType(99)));
    assert_eq!(decode(&[]), Err(FrameError::Truncated));
    assert_eq!(decode(&[T_OPEN, 1, 2]), Err(FrameError::Truncated));
    let mut extra = encode(&Frame::ListShares);
    extra.push(0);
    assert_eq!(decode(&extra), Err(FrameError::Truncated));
    let mut huge = vec![T_SHARES];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decode(&huge), Err(FrameError::TooMany));
}

proptest! {
    #[test]
    fn sync_bodies_roundtrip(epoch in any::<u64>(), message in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Bare messages are Automerge's, which start with 0x42 or 0x43.
        let message = [&[0x42u8][..], &message].concat();
        let body = encode_sync_body(epoch, &message);
        prop_assert_eq!(decode_sync_body(&body).unwrap(), (epoch, &message[..]));
        let _ = decode_sync_body(&body[..body.len().min(5)]);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn truncations_and_flips_never_panic(which in any::<usize>(), cut in any::<usize>(), flip in any::<usize>()) {
        let frames = sample_frames();
        let frame = encode(&frames[which % frames.len()]);
        let _ = decode(&frame[..cut % (frame.len() + 1)]);
        let mut flipped = frame.clone();
        let i = flip % flipped.len();
        flipped[i] ^= 0x5a;
        let _ = decode(&flipped);
    }
}
