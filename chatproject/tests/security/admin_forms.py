"""Drive the real Django admin from tests: a staff client, changelist actions, add and change forms."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.test import Client


def staff_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def act(client: Client, model: str, action: str, ids: list[int], reason: str = "as the log says", **extra: Any) -> Any:
    """Post a changelist action, as the action bar does; follow to the page it lands on."""
    data = {"action": action, "_selected_action": ids, "reason": reason, **extra}
    return client.post(f"/admin/{model}/", data, follow=True)


def _fields(form: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if value is None or value is False:
            continue
        key = form.add_prefix(name)
        if isinstance(value, list | tuple):
            data[key] = [item.pk if isinstance(item, Model) else item for item in value]
        elif isinstance(value, Model):
            data[key] = value.pk
        else:
            data[key] = value
    return data


def form_data(page: Any) -> dict[str, Any]:
    """Return what a browser would post back from an admin add or change page, unchanged, inlines included."""
    data = _fields(page.context["adminform"].form)
    for inline in page.context.get("inline_admin_formsets", []):
        data.update(_fields(inline.formset.management_form))
        for form in inline.formset.forms:
            data.update(_fields(form))
    return data


def change(client: Client, model: str, pk: int, **changes: Any) -> Any:
    """Load an object's change page, apply `changes` (None unticks or clears) and save it, as a browser would."""
    url = f"/admin/{model}/{pk}/change/"
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    data = form_data(page)
    for name, value in changes.items():
        if value is None or value is False:
            data.pop(name, None)
        else:
            data[name] = value
    return client.post(url, data)


def add(client: Client, model: str, **values: Any) -> Any:
    """Fill in an add page and save it."""
    url = f"/admin/{model}/add/"
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    return client.post(url, {**form_data(page), **values})


def form_errors(response: Any) -> Any:
    """The errors of a form the admin showed again, or None when it saved (a redirect)."""
    if response.status_code == 302:
        return None
    form = response.context["adminform"].form
    return {**form.errors, "__all__": form.non_field_errors()}
