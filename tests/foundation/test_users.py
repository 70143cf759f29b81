import pytest
from django.core.management import CommandError, call_command


def test_a_researcher_gets_a_token_that_reads_the_api_but_cannot_use_the_admin(client, taxonomy, capsys):
    call_command("create_user", "rita", "--role", "researcher")
    out = capsys.readouterr().out
    token = out.split("API token: ")[1].split()[0]
    assert client.get("/api/classes/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    password = out.split("password: ")[1].split(")")[0]
    assert client.login(username="rita", password=password)
    assert client.get("/admin/").status_code == 302  # not staff: sent to the admin login


def test_an_admin_is_staff_and_an_unknown_role_or_taken_name_is_refused(admin_client, taxonomy, capsys):
    call_command("create_user", "ada", "--role", "admin", "--password", "pw-ada-123")
    from django.test import Client

    c = Client()
    assert c.login(username="ada", password="pw-ada-123") and c.get("/admin/").status_code == 200
    with pytest.raises(CommandError, match="taken"):
        call_command("create_user", "ada", "--role", "annotator")
    with pytest.raises(CommandError):
        call_command("create_user", "bob", "--role", "owner")
