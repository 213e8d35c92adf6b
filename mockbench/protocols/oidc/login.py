"""The login page of both issuers, for workshops: pick a professional of the loaded scenario or type an
identifier (IDNPS, RPPS or scenario id). Plain server-rendered HTML, French labels, no script."""

from __future__ import annotations

from html import escape

_STYLE = ("body{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1e1e1e}"
          "h1{font-size:1.4rem}label{display:block;margin:.6rem 0}.error{color:#b00020}"
          "button{margin-top:1rem;padding:.4rem 1.2rem}small{color:#555}")


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def render_login(*, title: str, action: str, request_id: str, client_id: str,
                 professionals: list[tuple[str, str, str]], error: str = "") -> str:
    """professionals: (IDNPS, display name, scenario id)."""
    rows = "".join(
        f'<label><input type="radio" name="professional" value="{escape(idnps)}"> {escape(name)} '
        f"<small>({escape(idnps)}, {escape(pid)})</small></label>" for idnps, name, pid in professionals)
    if not rows:
        rows = "<p>Aucun professionnel dans le monde chargé : saisissez un identifiant.</p>"
    err = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (f"<h1>{escape(title)} — connexion simulée</h1>"
            f"<p>Le logiciel <strong>{escape(client_id)}</strong> demande une authentification.</p>{err}"
            f'<form method="post" action="{escape(action)}">'
            f'<input type="hidden" name="request_id" value="{escape(request_id)}">'
            f"<fieldset><legend>Professionnels du scénario</legend>{rows}</fieldset>"
            '<label>Ou saisissez un identifiant (IDNPS, RPPS ou identifiant du scénario) : '
            '<input type="text" name="identifier" autocomplete="off"></label>'
            '<button type="submit">Se connecter</button></form>')
    return _page(title, body)


def render_message(title: str, text: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")
