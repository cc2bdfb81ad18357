def test_registered_user_can_fetch_themselves(client_for, alice):
    response = client_for(alice).get("/api/v1/users/me/")
    assert response.status_code == 200
    assert response.json() == {
        "id": alice.pk,
        "username": "alice",
        "display_name": "Alice",
        "email": "alice@example.com",
    }


def test_event_capture_records_published_events(capture_events, alice):
    from rooms import services

    with capture_events() as events:
        room = services.room_create(creator=alice, name="Town square")
    assert [event.type for event in events] == ["room.created"]
    assert events[0].room_id == room.pk
