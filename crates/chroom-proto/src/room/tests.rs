//! Room messages round-trip, and bad ones are refused with the error that names them.

use chroom_types::Account;

use super::*;

fn chat(text: &str) -> RoomMessage {
    RoomMessage {
        room: RoomId::from_bytes([5; 32]),
        author: Some(IdentityBinding {
            account: Account::from_bytes([1; 20]),
            expires_at_unix: 1_800_000_000,
            signature: [2; 65],
        }),
        sent_at_unix_ms: 1_790_000_000_000,
        body: RoomMessageBody::Chat { text: text.into() },
    }
}

#[test]
fn every_cue_round_trips_and_a_cue_without_its_subject_is_refused() {
    let someone = NodeId::from_public_key([3; 32]);
    for cue in [
        Cue::Present,
        Cue::StopPresenting,
        Cue::PassPresentation { to: someone },
        Cue::RaiseHand,
        Cue::LowerHand { of: someone },
        Cue::InviteToStage { who: someone },
        Cue::RemoveFromStage { who: someone },
    ] {
        let message = RoomMessage {
            body: RoomMessageBody::Cue {
                cue,
                at_unix_ms: 1_790_000_000_000,
            },
            ..chat("")
        };
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Ok(message)
        );
    }
    let wire = |kind: pb::CueKind, subject: &[u8]| {
        let mut message = pb::RoomMessage::decode(&encode_room_message(&chat(""))[..]).unwrap();
        message.body = Some(pb::room_message::Body::Cue(pb::Cue {
            kind: kind.into(),
            subject: Bytes::copy_from_slice(subject),
            at_unix_ms: 1,
        }));
        decode_room_message(&message.encode_to_vec())
    };
    assert_eq!(
        wire(pb::CueKind::InviteToStage, &[1; 5]),
        Err(DecodeError::BadNodeId { len: 5 })
    );
    assert_eq!(
        wire(pb::CueKind::Unspecified, &[]),
        Err(DecodeError::MissingKind { message: "Cue" })
    );
}

#[test]
fn a_presence_round_trips_every_field() {
    let message = RoomMessage {
        body: RoomMessageBody::Presence(Presence {
            leaving: false,
            sharing_screen: true,
            publish_only: true,
            joined_at_unix_ms: 1_800_000_000_000,
            beat_interval_ms: 1_000,
            display_name: Some("Ada".into()),
            links_epoch: 2,
        }),
        ..chat("")
    };
    assert_eq!(
        decode_room_message(&encode_room_message(&message)),
        Ok(message)
    );
}

#[test]
fn a_document_edit_round_trips_and_a_bad_name_or_size_is_refused() {
    let edit = |name: &str, update: Vec<u8>| RoomMessage {
        body: RoomMessageBody::DocUpdate {
            name: name.into(),
            update: update.into(),
        },
        ..chat("")
    };
    let message = edit("notes", vec![1, 2, 3]);
    let cursor = |anchor: Vec<u8>| RoomMessage {
        body: RoomMessageBody::DocCursor {
            name: "notes".into(),
            anchor: anchor.into(),
            head: Bytes::from_static(&[1]),
        },
        ..chat("")
    };
    assert_eq!(
        decode_room_message(&encode_room_message(&cursor(vec![2; 64]))),
        Ok(cursor(vec![2; 64]))
    );
    assert!(matches!(
        decode_room_message(&encode_room_message(&cursor(vec![2; 65]))),
        Err(DecodeError::BadDocUpdate { .. })
    ));
    assert_eq!(
        decode_room_message(&encode_room_message(&message)),
        Ok(message)
    );
    for bad in [
        edit("", vec![1]),
        edit("a\nb", vec![1]),
        edit(&"n".repeat(65), vec![1]),
        edit("notes", vec![]),
        edit("notes", vec![0; MAX_DOC_UPDATE_BYTES + 1]),
    ] {
        assert!(matches!(
            decode_room_message(&encode_room_message(&bad)),
            Err(DecodeError::BadDocUpdate { .. })
        ));
    }
}

#[test]
fn a_presence_names_its_user_and_an_address_as_a_name_is_refused() {
    let named = |name: &str| RoomMessage {
        body: RoomMessageBody::Presence(Presence {
            display_name: Some(name.into()),
            ..Presence::default()
        }),
        ..chat("")
    };
    let message = named("Ada");
    assert_eq!(
        decode_room_message(&encode_room_message(&message)),
        Ok(message)
    );
    assert!(matches!(
        decode_room_message(&encode_room_message(&named(
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        ))),
        Err(DecodeError::BadDisplayName { .. })
    ));
}

#[test]
fn questions_round_trip_and_empty_or_long_ones_are_refused() {
    let asking = |text: &str| RoomMessage {
        body: RoomMessageBody::Question { text: text.into() },
        ..chat("")
    };
    let message = asking("Is there a recording?");
    assert_eq!(
        decode_room_message(&encode_room_message(&message)),
        Ok(message)
    );
    for (text, len) in [("", 0), (&*"q".repeat(501), 501)] {
        assert_eq!(
            decode_room_message(&encode_room_message(&asking(text))),
            Err(DecodeError::BadQuestion { len })
        );
    }
}

#[test]
fn chat_round_trips() {
    let message = chat("hello, room");
    assert_eq!(
        decode_room_message(&encode_room_message(&message)),
        Ok(message)
    );
}

#[test]
fn file_offers_round_trip_and_bad_names_or_sizes_are_refused() {
    let offer = FileOffer {
        hash: FileHash::from_bytes([7; 32]),
        name: "notes.pdf".into(),
        size: 5_000_000,
        manifest_hash: [8; 32],
    };
    let message = RoomMessage {
        body: RoomMessageBody::FileOffer(offer.clone()),
        ..chat("")
    };
    assert_eq!(
        decode_room_message(&encode_room_message(&message)),
        Ok(message.clone())
    );
    for (name, size) in [
        ("../../.bashrc", 10),
        ("a\\b", 10),
        ("", 10),
        ("..", 10),
        ("bell\u{7}", 10),
        ("ok.txt", 0),
        ("ok.txt", MAX_FILE_BYTES + 1),
    ] {
        let bad = RoomMessage {
            body: RoomMessageBody::FileOffer(FileOffer {
                name: name.into(),
                size,
                ..offer.clone()
            }),
            ..message.clone()
        };
        assert!(
            matches!(
                decode_room_message(&encode_room_message(&bad)),
                Err(DecodeError::BadFileOffer { .. })
            ),
            "{name:?} {size}"
        );
    }
}

#[test]
fn moderation_round_trips_and_needs_a_key_and_an_action() {
    for action in [Moderation::Mute, Moderation::Unmute, Moderation::Remove] {
        let message = RoomMessage {
            body: RoomMessageBody::Moderate {
                target: NodeId::from_public_key([4; 32]),
                action,
            },
            ..chat("")
        };
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Ok(message)
        );
    }
    let wire = |target: &[u8], action: i32| {
        pb::RoomMessage {
            room_id: Bytes::copy_from_slice(&[5; 32]),
            body: Some(pb::room_message::Body::Moderate(pb::Moderate {
                target: Bytes::copy_from_slice(target),
                action,
            })),
            ..Default::default()
        }
        .encode_to_vec()
    };
    assert_eq!(
        decode_room_message(&wire(&[4; 31], 1)),
        Err(DecodeError::BadNodeId { len: 31 })
    );
    for action in [0, 99] {
        assert!(matches!(
            decode_room_message(&wire(&[4; 32], action)),
            Err(DecodeError::MissingKind { .. })
        ));
    }
}

#[test]
fn overlong_chat_is_refused() {
    let message = chat(&"x".repeat(MAX_CHAT_TEXT_BYTES + 1));
    assert_eq!(
        decode_room_message(&encode_room_message(&message)),
        Err(DecodeError::ChatTooLong {
            len: MAX_CHAT_TEXT_BYTES + 1
        })
    );
}

#[test]
fn a_message_without_body_or_room_is_refused() {
    let no_body = pb::RoomMessage {
        room_id: Bytes::copy_from_slice(&[5; 32]),
        ..Default::default()
    };
    assert_eq!(
        decode_room_message(&no_body.encode_to_vec()),
        Err(DecodeError::MissingKind {
            message: "RoomMessage"
        })
    );
    assert_eq!(
        decode_room_message(&[]),
        Err(DecodeError::BadRoomId { len: 0 })
    );
    let huge = vec![0u8; MAX_ROOM_MESSAGE_BYTES + 1];
    assert!(matches!(
        decode_room_message(&huge),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn sealed_content_is_content_alone_and_a_sealed_envelope_round_trips() {
    let content = RoomMessageBody::DocUpdate {
        name: "notes".into(),
        update: Bytes::from_static(b"\x01"),
    };
    let plain = encode_sealed_content(&content).unwrap();
    assert_eq!(decode_sealed_content(&plain), Ok(content));
    // Control kinds travel in the clear: they are never sealed, nor accepted sealed.
    let presence = RoomMessageBody::Presence(Presence::default());
    assert_eq!(encode_sealed_content(&presence), None);
    let smuggled = pb::RoomMessage {
        body: Some(body_to_wire(&presence)),
        ..pb::RoomMessage::default()
    };
    assert!(matches!(
        decode_sealed_content(&smuggled.encode_to_vec()),
        Err(DecodeError::BadSealed { .. })
    ));
    // Content cannot claim another envelope than the one it arrived in.
    assert!(matches!(
        decode_sealed_content(&encode_room_message(&chat("hi"))),
        Err(DecodeError::BadSealed { .. })
    ));

    let sealed = RoomMessage {
        body: RoomMessageBody::Sealed(Sealed {
            key_id: 3,
            counter: 41,
            ciphertext: Bytes::from(vec![7; SEAL_TAG_BYTES + 5]),
        }),
        ..chat("")
    };
    assert_eq!(
        decode_room_message(&encode_room_message(&sealed)),
        Ok(sealed)
    );
    let tagless = RoomMessage {
        body: RoomMessageBody::Sealed(Sealed {
            key_id: 3,
            counter: 41,
            ciphertext: Bytes::from(vec![7; SEAL_TAG_BYTES - 1]),
        }),
        ..chat("")
    };
    assert!(matches!(
        decode_room_message(&encode_room_message(&tagless)),
        Err(DecodeError::BadSealed { .. })
    ));
}
