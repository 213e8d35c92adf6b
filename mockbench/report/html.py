"""The evidence report as one self-contained HTML file: inline CSS, no script, no external reference of any
kind (no link, image, font or stylesheet fetched), so that it opens in a browser with no network and can be
attached to a referencing file. Labels are in French, for the people who read it.

Everything shown comes from the report's data and is escaped by Jinja2's autoescape: raw messages are
hostile input. A Content-Security-Policy meta element forbids scripts and fetches as a second guard.
"""

from __future__ import annotations

import json
import re

from jinja2 import Environment

STATUS = {"passed": "réussie", "failed": "échouée", "pending": "en attente"}
OUTCOME = {"passed": "toutes les étapes sont réussies", "failed": "au moins une étape a échoué"}
VERDICT = {"accepted": "accepté", "refused": "refusé", "error": "erreur"}
SEVERITY = {"error": "erreur", "warning": "avertissement", "info": "information"}
DOC_STATUS = {"approved": "actif", "deprecated": "remplacé", "archived": "archivé", "deleted": "supprimé"}
DMP = {"active": "actif", "closed": "fermé", "absent": "absent"}
ROLE = {"hospital": "établissement (lue par le logiciel testé)", "correspondent": "correspondant simulé",
        "error": "boîte d'erreur", "outside": "hors MSSanté (boîte fourre-tout)"}
DIRECTION = {"in": "entrant", "out": "sortant"}
KIND = {"xml": "XML", "hl7": "HL7 v2", "mime": "MIME", "json": "JSON", "form": "paramètres", "text": "texte",
        "empty": "vide", "binary": "binaire", "zip": "archive zip"}

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

TEMPLATE = r"""{% macro link(seq) %}{% if seq in anchors %}<a href="{{ anchors[seq] }}">n° {{ seq }}</a>{% else %}n° {{ seq }} <span class="note">(hors de la chronologie listée)</span>{% endif %}{% endmacro %}<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mockbench {{ r.bench.version or '' }}">
<meta name="mockbench-scenario" content="{{ r.scenario.id if r.scenario else '' }}">
<title>Rapport mockbench{% if r.scenario %} – {{ r.scenario.id }}{% endif %}</title>
<style>
:root { --ok: #1b6e2a; --ko: #a61b1b; --wait: #8a6100; --line: #d0d4da; --soft: #f4f6f8; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1d232a;
       margin: 0 auto; max-width: 72rem; padding: 1.5rem; line-height: 1.45; font-size: 15px; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; } h2 { font-size: 1.25rem; border-bottom: 2px solid var(--line);
padding-bottom: .2rem; margin-top: 2rem; } h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
h4 { font-size: .95rem; margin: .8rem 0 .3rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid var(--line); padding: .3rem .45rem; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .6rem 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
pre { background: var(--soft); border: 1px solid var(--line); padding: .6rem; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; font-size: .8rem; line-height: 1.35; margin: .3rem 0 .8rem; }
code { font-size: .85em; }
.badge { display: inline-block; padding: .05rem .45rem; border-radius: .6rem; font-size: .82rem; font-weight: 600;
         border: 1px solid currentColor; white-space: nowrap; }
.passed, .accepted { color: var(--ok); } .failed, .refused, .error { color: var(--ko); }
.pending, .warning { color: var(--wait); } .info { color: #355f8a; }
.note { color: #555; font-style: italic; font-size: .88rem; }
.cap { background: #fff6dc; border: 1px solid #e5c76b; padding: .4rem .6rem; margin: .5rem 0; font-size: .9rem; }
.entry { border: 1px solid var(--line); border-radius: .3rem; padding: .6rem .8rem; margin: 0 0 1.2rem;
         break-inside: auto; }
.part { border-left: 3px solid var(--line); padding-left: .7rem; margin: .5rem 0; }
.step-reason { margin: .2rem 0 0; }
nav.toc a { margin-right: 1rem; }
a { color: #1a4f8b; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  nav.toc, details.raw { display: none; }
  a { color: inherit; text-decoration: none; }
  pre { font-size: 8pt; border: none; }
  h2 { break-after: avoid; } tr, .part { break-inside: avoid; }
}
</style>
</head>
<body>
<header>
<h1>Rapport de preuve mockbench</h1>
{% if r.scenario %}
<p><strong>Scénario {{ r.scenario.id }}</strong> : {{ r.scenario.title }}</p>
{% else %}<p>Aucun scénario chargé : le rapport montre le journal et l'état du monde.</p>{% endif %}
{% if r.outcome %}<p>Résultat : <span class="badge {{ r.outcome }}">{{ outcome[r.outcome] }}</span>
  ({{ r.steps | selectattr("status", "equalto", "passed") | list | length }} / {{ r.steps | length }} étapes réussies)</p>{% endif %}
<nav class="toc"><a href="#scenario">Scénario</a><a href="#etapes">Étapes</a><a href="#transitions">Transitions</a>{% if r.faults %}<a href="#pannes">Pannes</a>{% endif %}
<a href="#echanges">Échanges</a><a href="#etat">État du monde</a><a href="#constats">Constats</a>
<a href="#chronologie">Chronologie</a></nav>
</header>

<section id="scenario">
<h2>Scénario</h2>
<dl class="meta">
{% if r.scenario %}
<dt>Identifiant</dt><dd><code>{{ r.scenario.id }}</code></dd>
<dt>Titre</dt><dd>{{ r.scenario.title }}</dd>
<dt>Exigence</dt><dd>{{ r.scenario.requirement or "—" }}</dd>
<dt>Source</dt><dd><code>{{ r.scenario.source or "—" }}</code></dd>
<dt>Chargé le</dt><dd>{{ r.scenario.loaded_at | when }}</dd>
{% endif %}
<dt>Rapport généré le</dt><dd>{{ r.generated_at | when }}</dd>
<dt>Banc</dt><dd>mockbench {{ r.bench.version or "" }}{% if r.bench.url %} ({{ r.bench.url }}){% endif %}</dd>
<dt>Journal</dt><dd>{{ r.journal.count }} entrées{% if r.journal.dropped %}, dont {{ r.journal.dropped }} anciennes effacées (journal borné){% endif %}</dd>
</dl>
{% if r.scenario and r.scenario.description %}<h3>Description</h3><p>{{ r.scenario.description }}</p>{% endif %}
</section>

<section id="etapes">
<h2>Étapes</h2>
{% if not r.steps %}<p class="note">Pas d'étape.</p>{% else %}
{% if r.steps | selectattr("not_observed") | list %}<p class="note">Les étapes encore en attente au moment du
rapport y figurent comme échouées, non observées (le banc les laisse en attente : le déroulé peut continuer).</p>{% endif %}
<table>
<thead><tr><th>#</th><th>Étape</th><th>Statut</th><th>Heure</th><th>Entrées du journal</th></tr></thead>
<tbody>
{% for s in r.steps %}
<tr id="step-{{ s.id | slug }}">
<td>{{ loop.index }}</td>
<td><strong><code>{{ s.id }}</code></strong> — {{ s.say }}
{% if s.expect %}<div class="note">attendu : {{ s.expect | expect }}{% if s.verdict != "accepted" %}, verdict {{ verdict.get(s.verdict, s.verdict) }}{% endif %}</div>{% endif %}
{% if s.reason_fr or s.reason %}<p class="step-reason">Raison : {{ s.reason_fr or s.reason }}{% if s.reason_code %} <span class="note">[{{ s.reason_code }}]</span>{% endif %}</p>{% endif %}
{% if s.nearest_seq %}<p class="note">Échange le plus proche de ce qui était attendu : {{ link(s.nearest_seq) }}</p>{% endif %}</td>
<td><span class="badge {{ s.status }}">{{ status.get(s.status, s.status) }}</span>{% if s.not_observed %}<div class="note">non observée</div>{% endif %}</td>
<td>{{ s.decided_at | when }}</td>
<td>{% for seq in s.entries %}{{ link(seq) }} {% else %}—{% endfor %}</td>
</tr>
{% endfor %}
</tbody></table>{% endif %}
</section>

<section id="transitions">
<h2>Transitions</h2>
{% if not r.transitions %}<p class="note">Pas de transition.</p>{% else %}
<table>
<thead><tr><th>Transition</th><th>Déclencheur</th><th>Déclenchée</th><th>Quand</th><th>Ce qui a été fait</th></tr></thead>
<tbody>
{% for t in r.transitions %}
<tr id="transition-{{ t.id | slug }}">
<td><code>{{ t.id }}</code>{% if t.say %} — {{ t.say }}{% endif %}</td>
<td>{{ t.when | trigger }}</td>
<td>{% if t.fired %}<span class="badge {{ 'error' if t.error else 'passed' }}">{{ "oui, en erreur" if t.error else "oui" }}</span>{% else %}<span class="badge pending">non</span>{% endif %}</td>
<td>{{ t.fired_at | when }}</td>
<td>{% if t.what %}{{ t.what }}{% if t.entry %} (<a href="#seq-{{ t.entry }}">n° {{ t.entry }}</a>){% endif %}{% else %}<span class="note">prévu : {{ t.do | actions }}</span>{% endif %}
{% if t.error %}<div class="error">{{ t.error.code }} : {{ t.error.message }}</div>{% endif %}</td>
</tr>
{% endfor %}
</tbody></table>{% endif %}
</section>

{% if r.faults %}<section id="pannes">
<h2>Pannes injectées</h2>
<p class="note">Ces échanges ont reçu une panne injectée par une règle (faults) : leur issue n'est pas celle du
service réel.</p>
<table>
<thead><tr><th>Quand</th><th>Règle</th><th>Porte</th><th>Panne</th><th>Échange</th><th>Acteur</th><th>Patient</th></tr></thead>
<tbody>
{% for f in r.faults %}
<tr><td>{{ f.time | when }}</td><td><code>{{ f.rule }}</code>{% if f.say %} — {{ f.say }}{% endif %}</td><td>{{ f.door }}</td>
<td>{{ f.kind }}</td><td>{{ f.operation }}</td><td>{{ f.actor or "—" }}</td><td>{{ f.patient or "—" }}</td></tr>
{% endfor %}
</tbody></table>
</section>{% endif %}

<section id="echanges">
<h2>Échanges (entrées du journal)</h2>
<p class="note">Les entrées qui ont décidé une étape, puis celles qui portent un constat ; messages bruts mis en forme
(XML indenté, HL7 un segment par ligne, parties MIME listées, jetons décodés sans vérifier leur signature).</p>
{% if r.entries_capped %}<p class="cap">Liste plafonnée : {{ r.entries | length }} entrées détaillées ; les autres figurent dans la chronologie.</p>{% endif %}
{% for e in r.entries %}
<article class="entry" id="entry-{{ e.seq }}">
<h3>n° {{ e.seq }} · {{ e.channel }} {{ e.operation }} <span class="badge {{ e.verdict }}">{{ verdict.get(e.verdict, e.verdict) }}{% if e.code %} ({{ e.code }}){% endif %}</span></h3>
<dl class="meta">
<dt>Heure</dt><dd>{{ e.time | when }}</dd>
<dt>Sens</dt><dd>{{ direction.get(e.direction, e.direction) }}</dd>
<dt>Acteur</dt><dd>{{ e.actor or "—" }}</dd>
{% if e.patient or e.patient_ins %}<dt>Patient</dt><dd>{{ e.patient or "" }} {% if e.patient_ins %}(INS {{ e.patient_ins }}){% endif %}</dd>{% endif %}
{% if e.document %}<dt>Document</dt><dd><code>{{ e.document }}</code></dd>{% endif %}
{% if e.ref %}<dt>Référence</dt><dd><code>{{ e.ref }}</code></dd>{% endif %}
{% if e.fault %}<dt>Panne injectée</dt><dd><a href="#pannes"><code>{{ e.fault }}</code></a> (issue non représentative du service réel)</dd>{% endif %}
<dt>Taille</dt><dd>{{ e.size }} octets{% if e.raw_truncated %} (le journal n'en garde que le début{% if e.pretty_source == "mailbox" %} ; mis en forme depuis la boîte aux lettres, message complet{% endif %}){% endif %}</dd>
<dt>Étapes</dt><dd>{% for s in r.steps if e.seq in s.entries %}<a href="#step-{{ s.id | slug }}">{{ s.id }}</a> {% else %}—{% endfor %}</dd>
</dl>
{% if e.findings %}<ul>{% for f in e.findings %}<li><span class="badge {{ f.severity }}">{{ severity.get(f.severity, f.severity) }}</span> <strong>{{ f.rule }}</strong> : {{ f.message_fr or f.message }}</li>{% endfor %}</ul>{% endif %}
{{ pretty(e.pretty) }}
{% if e.raw %}<details class="raw"><summary>Message brut ({{ e.raw | length }} caractères)</summary><pre>{{ e.raw }}</pre></details>{% endif %}
{% if e.response is defined %}<h4>Réponse du banc{% if e.response_truncated %} <span class="note">(le journal n'en garde que le début : {{ e.response_size }} octets au total)</span>{% endif %}</h4>
{{ pretty(e.response_pretty) }}
{% if e.response %}<details class="raw"><summary>Réponse brute ({{ e.response | length }} caractères)</summary><pre>{{ e.response }}</pre></details>{% endif %}{% endif %}
</article>
{% else %}<p class="note">Aucune entrée à détailler.</p>{% endfor %}
</section>

<section id="etat">
<h2>État du monde</h2>
{% for label, key in [("Avant (au chargement du scénario)", "before"), ("Après (au moment du rapport)", "after")] %}
{% set w = r.world[key] %}
<h3 id="etat-{{ key }}">{{ label }}</h3>
{% if not w %}<p class="note">Non enregistré (aucun scénario chargé, ou chargé par une version antérieure).</p>{% else %}
<p class="note">Relevé le {{ w.time | when }} : {{ w.structures }} structure(s), {{ w.professionals }} professionnel(s),
{{ w.patients_total }} patient(s), {{ w.mailboxes_total }} boîte(s) aux lettres.</p>
{% for p in w.patients %}
<h4>Patient {{ p.id }} — {{ p.given_name }} {{ p.family_name }} (INS {{ p.ins }}{% if p.minor %}, mineur{% endif %})</h4>
<p>DMP {{ dmp.get(p.dmp, p.dmp) }} ; consentement : consultation {{ p.consent.consultation }}, opposition à l'alimentation {{ p.consent.feeding_opposition }}{% if p.secret_connection %} ; connexion secrète{% endif %}</p>
{% if p.documents %}
<table><thead><tr><th>Document</th><th>Statut</th><th>Confidentialité</th><th>Version</th><th>Chaîne de versions</th></tr></thead><tbody>
{% for d in p.documents %}
<tr><td><code>{{ d.id }}</code>{% if d.title %} — {{ d.title }}{% endif %}{% if d.type_code %} <span class="note">({{ d.type_code }})</span>{% endif %}{% if d.id != d.unique_id %}<div class="note">{{ d.unique_id }}</div>{% endif %}</td>
<td>{{ doc_status.get(d.status, d.status) }}</td><td>{{ d.confidentiality | join(", ") }}</td><td>{{ d.version }}</td>
<td>{% for v in d.versions %}v{{ v.version }} : {{ doc_status.get(v.status, v.status) }}, {{ v.confidentiality | join(", ") }}{% if not loop.last %} → {% endif %}{% endfor %}
{% if d.replaces %}<div>remplace <code>{{ d.replaces }}</code></div>{% endif %}{% if d.replaced_by %}<div>remplacé par <code>{{ d.replaced_by }}</code></div>{% endif %}</td></tr>
{% endfor %}</tbody></table>
{% if p.documents_total > p.documents | length %}<p class="cap">{{ p.documents_total - p.documents | length }} autres documents non listés.</p>{% endif %}
{% else %}<p class="note">Aucun document.</p>{% endif %}
{% if p.authorizations %}<table><thead><tr><th>Autorisation</th><th>Statut</th><th>Depuis</th><th>Jusqu'au</th></tr></thead><tbody>
{% for a in p.authorizations %}<tr><td>{{ "structure" if a.subject_kind == "structure" else "professionnel" }} {{ a.subject }}</td><td>{{ a.status }}</td><td>{{ a.since | when }}</td><td>{{ a.until | when }}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="note">Aucune autorisation.</p>{% endif %}
{% endfor %}
{% if w.patients_total > w.patients | length %}<p class="cap">{{ w.patients_total - w.patients | length }} autres patients non listés.</p>{% endif %}
{% if w.mailboxes %}<table><thead><tr><th>Boîte aux lettres</th><th>Rôle</th><th>Type</th><th>Messages</th></tr></thead><tbody>
{% for m in w.mailboxes %}<tr><td>{{ m.address }}</td><td>{{ role.get(m.role, m.role) }}</td><td>{{ m.type }}</td><td>{{ m.messages }}</td></tr>{% endfor %}
</tbody></table>{% if w.mailboxes_total > w.mailboxes | length %}<p class="cap">{{ w.mailboxes_total - w.mailboxes | length }} autres boîtes non listées.</p>{% endif %}{% endif %}
{% endif %}
{% endfor %}
</section>

<section id="constats">
<h2>Constats</h2>
{% if not r.findings %}<p class="note">Aucun constat.</p>{% else %}
{% if r.findings_capped %}<p class="cap">Liste plafonnée à {{ r.findings | length }} constats.</p>{% endif %}
<table><thead><tr><th>Gravité</th><th>Règle</th><th>Constat</th><th>Entrées</th></tr></thead><tbody>
{% for f in r.findings %}<tr><td><span class="badge {{ f.severity }}">{{ severity.get(f.severity, f.severity) }}</span></td>
<td><strong>{{ f.rule }}</strong></td><td>{{ f.message_fr or f.message }}</td>
<td>{% for seq in f.entries[:20] %}{{ link(seq) }} {% endfor %}{% if f.entries | length > 20 %}… ({{ f.entries | length }}){% endif %}</td></tr>
{% endfor %}</tbody></table>{% endif %}
</section>

<section id="chronologie">
<h2>Chronologie (journal)</h2>
{% if r.timeline_capped %}<p class="cap">Chronologie plafonnée aux {{ r.timeline | length }} premières entrées sur {{ r.journal.count }}.</p>{% endif %}
<table><thead><tr><th>n°</th><th>Heure</th><th>Canal</th><th>Opération</th><th>Sens</th><th>Acteur</th><th>Patient</th><th>Verdict</th></tr></thead><tbody>
{% for e in r.timeline %}<tr id="seq-{{ e.seq }}"><td>{% if e.seq in detailed %}<a href="#entry-{{ e.seq }}">{{ e.seq }}</a>{% else %}{{ e.seq }}{% endif %}</td>
<td>{{ e.time | when }}</td><td>{{ e.channel }}</td><td>{{ e.operation }}</td><td>{{ direction.get(e.direction, e.direction) }}</td>
<td>{{ e.actor }}</td><td>{{ e.patient or "" }}</td><td><span class="{{ e.verdict }}">{{ verdict.get(e.verdict, e.verdict) }}{% if e.code %} ({{ e.code }}){% endif %}</span>{% if e.findings %} · {{ e.findings | length }} constat(s){% endif %}</td></tr>
{% endfor %}</tbody></table>
</section>
<footer><p class="note">Produit par mockbench {{ r.bench.version or "" }}. Heures en UTC (horloge virtuelle du banc).</p></footer>
</body>
</html>
"""

PRETTY = r"""{% macro show(p, depth=0) %}
<div class="pretty">
<p class="note">Mise en forme : {{ kind.get(p.kind, p.kind) }}{% if p.note %} — {{ p.note }}{% endif %}</p>
{% if p.text %}<pre>{{ p.text }}</pre>{% endif %}
{% if p.members %}<table><thead><tr><th>Fichier de l'archive</th><th>Taille</th><th>Compressé</th></tr></thead><tbody>
{% for m in p.members %}<tr><td><code>{{ m.name }}</code></td><td>{{ m.size }}</td><td>{{ m.compressed }}</td></tr>{% endfor %}</tbody></table>{% endif %}
{% if p.entries %}<table><thead><tr><th>Entrée de METADATA.XML</th><th>Type</th><th>Confidentialité</th><th>Taille</th><th>Empreinte</th><th>Action</th></tr></thead><tbody>
{% for d in p.entries %}<tr><td><code>{{ d.unique_id }}</code> — {{ d.title }}<div class="note">{{ d.path }} · {{ d.mime_type }}{% if d.patient_ins %} · INS {{ d.patient_ins }}{% endif %}</div></td>
<td>{{ d.type_code }}</td><td>{{ d.confidentiality | join(", ") }}</td><td>{{ d.size }}{% if not d.size_ok %} <span class="error">(différente)</span>{% endif %}</td>
<td>{{ "conforme" if d.hash_ok else "différente" }}</td><td>{{ d.action or "—" }}</td></tr>{% endfor %}</tbody></table>{% endif %}
{% if p.findings %}<ul>{% for f in p.findings %}<li>{{ f }}</li>{% endfor %}</ul>{% endif %}
{% for t in p.tokens or [] %}<div class="part"><h4>Jeton JWT {{ t.token }}</h4>
<p class="note">Signature {{ t.signature.algorithm or "?" }}{% if not t.signature.present %} absente{% endif %} : non vérifiée par ce rapport.</p>
<pre>en-tête : {{ t.header | json }}
revendications : {{ t.claims | json }}</pre></div>{% endfor %}
{% if depth < 2 %}{% for part in p.parts or [] %}<div class="part">
<h4>Partie {{ loop.index }} : {{ part.title }} <span class="note">({{ part.content_type or "?" }}, {{ part.size }} octets)</span></h4>
{% if part.headers %}<pre>{% for k, v in part.headers.items() %}{{ k }}: {{ v }}
{% endfor %}</pre>{% endif %}
{{ show(part, depth + 1) }}</div>{% endfor %}{% endif %}
</div>
{% endmacro %}"""


def _slug(value: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", str(value))


def _when(value: object) -> str:
    """ISO time as the French reader expects it: 2026-11-26 10:04:12 UTC (virtual clock)."""
    if not value:
        return "—"
    text = str(value)
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", text)
    if not m:
        return text
    return f"{m.group(1)} {m.group(2)}" + (" UTC" if m.group(4) in ("Z", "+00:00", None) else f" {m.group(4)}")


def _expect(expect: dict) -> str:
    parts = []
    for key, value in expect.items():
        shown = " ou ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key} = {shown}")
    return ", ".join(parts)


def _trigger(when: dict | None) -> str:
    when = when or {}
    if when.get("manual"):
        return "manuelle"
    if when.get("at"):
        return f"à {when['at']}"
    after = when.get("after") or {}
    if after:
        what = ", ".join(f"{k} = {v}" for k, v in after.items() if k != "count")
        return f"après {after.get('count', 1)} × ({what})"
    return str(when)


def _actions(do: list) -> str:
    names: list[str] = []
    for action in do or []:
        if isinstance(action, dict):
            names.extend(action.keys())
    return ", ".join(names) or "—"


def _environment() -> Environment:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(slug=_slug, when=_when, expect=_expect, trigger=_trigger, actions=_actions,
                       json=lambda v: json.dumps(v, indent=2, ensure_ascii=False))
    env.globals["kind"] = KIND
    return env


def render_html(report: dict) -> str:
    """The report (build.py's data) as one HTML document."""
    env = _environment()
    macros = env.from_string(PRETTY).module
    detailed = {e["seq"] for e in report.get("entries", [])}
    # Where a journal seq links to: its printed entry, else its timeline line; a seq in neither (dropped from
    # the bounded journal, or beyond the listed timeline) is shown without a link.
    anchors = {e["seq"]: f"#seq-{e['seq']}" for e in report.get("timeline", [])}
    anchors.update({seq: f"#entry-{seq}" for seq in detailed})
    template = env.from_string(TEMPLATE)
    # the template's own macro: jinja2 types a template module's attributes only at run time
    pretty = getattr(macros, "show")  # noqa: B009
    return template.render(r=report, pretty=pretty, detailed=detailed, anchors=anchors, csp=CSP, status=STATUS, outcome=OUTCOME,
                           verdict=VERDICT, severity=SEVERITY, doc_status=DOC_STATUS, dmp=DMP, role=ROLE,
                           direction=DIRECTION)


__all__ = ["CSP", "render_html"]
