"""Generates docs/scenarios.md from the schema in schema.py, with one example per feature.

    python -m mockbench.scenarios.docs > docs/scenarios.md

A test checks that the committed document equals this output and that every example validates, so the
document cannot drift from the code.
"""

from __future__ import annotations

import sys

from .schema import ACTIONS, SCENARIO, Field, ListOf, Map, Spec

INTRO = """# Scenario format

A scenario is a YAML file: a seeded `world`, scripted `transitions` and checked `steps`. Load one with
`mockbench up --scenario ID_OR_FILE` or `POST /_bench/scenarios/{id}`; check a file with
`mockbench scenario validate FILE`, whose errors name the file, the line and the field:

```
my-scenario.yaml:12: world.patients[0].ins: 123 is not a valid NIR: it has 3 characters, 15 expected
```

Loading a scenario is a reset followed by its seed: one scenario at a time, journal emptied, clock at real
time. Names and numbers come from a Faker seeded with `seed`, so the same file gives the same people, the
same identifiers and the same document ids on every run. Titles and step texts are in French, as the users
speak.

**Steps.** Steps are ordered. A step is `pending` until a journal entry that matches its `expect` (channel,
operation, patient and any other field it names) arrives after the previous step was decided; that entry
decides it: `passed` if the entry's verdict is the step's `verdict` (`accepted` unless it says otherwise) and
its `then` holds on the world, else `failed` with the reason. An entry that does not match never decides a
step. A step still pending when the run is finished (`POST /_bench/steps/finish`) is `failed: not observed`,
and the reason names the nearest miss (`expected MDM^T04 for alice; nearest: MDM^T10 for alice at 10:04:12`).

**Transitions** fire inside the transaction of the request that triggers them, so their order is
deterministic: `after` N matching journal entries, `at` a virtual time (`+30s` after loading, or an ISO
time; `POST /_bench/clock {"advance": "30s"}` moves the clock), or `manual` (`POST /_bench/transitions/{id}`).
Each fires once. A transition whose actions fail is rolled back alone and journaled as an error (channel
`control`, operation `transition`); it never fails the request that triggered it.

**Actions** are what a transition does. The same actions can be run at any time with
`POST /_bench/world/actions {"actions": [...]}` (all or nothing), which is how a workshop host plays a third
party live.

**Journal channels and operations** used by `expect` and `after` are those of the public interface:
`dmp` (`TD0.2`, `TD3.1`, `TD2.1`...), `pfi` (`MDM^T02`, `ZAM^Z01`...), `mss` (`SUBMIT`, `DELIVER`, `MDN`...),
`oidc` (`token`, `ciba`...), `annuaire` (`search:Practitioner`...), `control` (`load`, `reset`, `transition`,
`clock`, `action`).
"""

EXAMPLES: list[tuple[str, str]] = [
    ("A seeded world", """\
id: exemple-monde
title: Un patient, un médecin, un document
seed: 7
world:
  structures:
    - {id: chu, name: CHU de Test, address: {line: 1 rue de la Santé, postal_code: "75014", city: Paris}}
  professionals:
    - {id: dr_martin, family_name: MARTIN, given_name: Jeanne, specialty: SM26, structure: chu}
  patients:
    - id: alice
      ins: generate
      sex: F
      authorizations: [{structure: chu, status: VALIDE}]
      documents:
        - {id: cr_consult, type: 11488-4, author: dr_martin}
"""),
    ("Hidden documents, versions, statuses", """\
id: exemple-documents
title: Documents masqués, invisibles, remplacés, supprimés
world:
  structures: [{id: chu}]
  professionals: [{id: dr_martin, structure: chu}]
  patients:
    - id: leo
      minor: true
      secret_connection: true
      authorizations: [{structure: chu}]
      documents:
        - {id: masque, confidentiality: [MASQUE_PS]}
        - {id: secret, confidentiality: [INVISIBLE_REPRESENTANTS_LEGAUX]}
        - {id: v1, type: 11502-2, created: -3d}
        - {id: v2, type: 11502-2, replaces: v1, created: -2d}
        - {id: supprime, status: deleted}
        - {id: archive, status: archived}
"""),
    ("DMP states, consent and oppositions", """\
id: exemple-etats
title: DMP fermé, consentement refusé, oppositions
world:
  structures: [{id: chu}]
  professionals: [{id: dr_martin, structure: chu}, {id: dr_roux, structure: chu}]
  patients:
    - {id: ferme, dmp: closed}
    - {id: sans_dmp, dmp: absent}
    - id: bernard
      consent: {consultation: INC, feeding_opposition: IO}
      oppositions: [OPPOSITION_BRIS_DE_GLACE]
      authorizations:
        - {structure: chu, status: VALIDE, until: +1h}
        - {professional: dr_roux, status: INTERDIT}
"""),
    ("Transitions: after, at, manual", """\
id: exemple-transitions
title: Un tiers agit sur le DMP
world:
  structures: [{id: chu}]
  professionals: [{id: dr_martin, structure: chu}, {id: dr_autre}]
  patients:
    - id: alice
      authorizations: [{structure: chu}]
      documents: [{id: cr, author: dr_martin}]
transitions:
  - id: masquage_tiers
    say: Après la première recherche, le patient masque le document
    when: {after: {channel: dmp, operation: TD3.1, patient: alice, count: 1}}
    do: [{mask_document: {document: cr, by: patient}}]
  - id: nouveau_document
    say: Trente secondes après le chargement, un autre médecin alimente le DMP
    when: {at: +30s}
    do: [{submit_document: {patient: alice, id: cr_externe, type: 11502-2, author: dr_autre}}]
  - id: retrait
    say: L'animateur retire l'autorisation du CHU
    when: {manual: true}
    do: [{withdraw_authorization: {patient: alice, structure: chu}}]
"""),
    ("Steps: expect, verdict, then", """\
id: exemple-etapes
title: Suppression d'un document par le flux HL7
world:
  structures: [{id: chu}]
  professionals: [{id: dr_martin, structure: chu}]
  patients: [{id: alice, authorizations: [{structure: chu}]}]
steps:
  - id: envoi
    say: Le DPI transmet un CR d'imagerie (MDM^T02)
    expect: {channel: pfi, operation: MDM^T02, patient: alice}
  - id: suppression
    say: Le DPI supprime le document (MDM^T04)
    expect: {channel: pfi, operation: MDM^T04, patient: alice}
    then: {document: {submitted_in: envoi, status: deleted}}
  - id: refus
    say: Une recherche après la fermeture du DMP est refusée
    expect: {channel: dmp, operation: TD3.1, patient: alice}
    verdict: refused
    then: {patient: {id: alice, dmp: closed}}
"""),
    ("Access traces (DMP/CONF.14)", """\
id: exemple-traces
title: Chaque action tracée par le DMP au nom de l'utilisateur
world:
  structures: [{id: chu}]
  professionals: [{id: dr_martin, structure: chu}, {id: dr_petit, structure: chu}]
  patients: [{id: alice, authorizations: [{structure: chu}]}]
steps:
  - id: alimentation
    say: Le Dr Martin alimente le DMP d'un CR invisible pour la patiente (TD2.1)
    expect: {channel: dmp, operation: TD2.1, patient: alice}
    then:
      traces:       # recorded since the previous step was decided; submitted_in may name this step
        - {patient: alice, action: alimentation, submitted_in: alimentation, actor: dr_martin}
        - {patient: alice, action: invisibilisation, submitted_in: alimentation, actor: dr_martin}
  - id: lecture
    say: Le Dr Petit lit le CR (TD3.2) ; la trace porte son nom
    expect: {channel: dmp, operation: TD3.2, patient: alice}
    then: {traces: [{patient: alice, action: telechargement, submitted_in: alimentation, actor: dr_petit}]}
"""),
    ("Mailboxes", """\
id: exemple-messageries
title: Boîtes aux lettres MSSanté
world:
  structures: [{id: chu}]
  professionals: [{id: dr_martin, structure: chu, mssante: jeanne.martin@chu.mssante.fr}]
  mailboxes:
    - {address: secretariat@chu.mssante.fr, type: ORG, owner: chu, role: hospital}
    - {address: dpi@chu.mssante.fr, type: APP, owner: chu, role: hospital}
    - {address: erreurs@chu.mssante.fr, type: ORG, owner: chu, role: error}
    - address: dr.roux@clinique.mssante.fr
      role: correspondent
      behaviour: {on_receive: fail_integration, error: "E12^Document illisible"}
"""),
    ("Directory", """\
id: exemple-annuaire
title: Des correspondants de ville dans l'Annuaire Santé
description: >
  Les professionnels et structures `directory_only` ne sont que dans l'Annuaire Santé (/fhir/v2) : des
  correspondants à chercher par RPPS, spécialité, organisation, code postal ou ville.
world:
  structures:
    - {id: chu, name: CHU de Test, address: {line: 1 rue de la Santé, postal_code: "75014", city: Paris}}
    - id: cab_lyon
      directory_only: true
      name: Cabinet médical des Terreaux
      siret: "23982597990748"
      address: {line: 3 place des Terreaux, postal_code: "69001", city: Lyon}
  professionals:
    - {id: dr_martin, specialty: SM26, structure: chu}
    - {id: dr_lefevre, family_name: LEFEVRE, given_name: Paul, specialty: SM26, structure: cab_lyon,
       directory_only: true, mssante: paul.lefevre@medecin.mssante.fr}
steps:
  - id: recherche
    say: Le DPI cherche les médecins généralistes de Lyon 1er et obtient leur adresse MSSanté
    expect: {channel: annuaire, operation: [search:Practitioner, search:Organization]}
"""),
    ("Pro Santé Connect CIBA", """\
id: exemple-ciba
title: Une authentification CIBA refusée puis une acceptée
description: >
  La Dr Martin refuse la demande CIBA (access_denied au premier appel du point token) ; le Dr Petit
  l'accepte au troisième appel. Le DPI doit afficher le refus et respecter l'intervalle de 5 s.
world:
  structures: [{id: chu}]
  professionals:
    - {id: dr_martin, structure: chu, ciba: {outcome: deny, after_polls: 0}}
    - {id: dr_petit, structure: chu, ciba: {outcome: approve, after_polls: 2, expires_in: 2m}}
steps:
  - id: refus
    say: La Dr Martin refuse la demande sur son application e-CPS ; le DPI affiche le refus
    expect: {channel: oidc, operation: token, actor: dr_martin}
    verdict: refused
  - id: acceptation
    say: Le Dr Petit accepte ; le DPI obtient ses jetons
    expect: {channel: oidc, operation: token, actor: dr_petit}
"""),
    ("The DPI's MLLP listener, entry codes and mails", """\
id: exemple-pfi-patient
title: Un envoi au patient par le PFI, accusé au DPI
description: >
  Le PFI envoie au DPI ses accusés métier sur l'écouteur que le scénario déclare (dpi.mllp ; aussi
  --dpi-mllp ou PUT /_bench/pfi/dpi). Le courriel au patient doit porter X-MSS-MES: FIN.
dpi: {mllp: "127.0.0.1:2576"}
world:
  structures: [{id: chu}]
  professionals: [{id: dr_martin, structure: chu}]
  patients: [{id: alice, authorizations: [{structure: chu}]}]
  mailboxes: [{address: pfi@chu.mssante.fr, type: APP, owner: chu, role: hospital}]
steps:
  - id: courriel
    say: Le courriel part vers la messagerie d'Alice, sans réponse possible
    expect: {channel: mss, operation: DELIVER, patient: alice, direction: out}
    then: {mail: {headers: {X-MSS-MES: FIN}}}
  - id: accuse
    say: Le DPI acquitte le ZAM^Z02 par un ACK^Z02^ACK
    expect: {channel: pfi, operation: ZAM^Z02, direction: out}
    forbid_findings: [PFI/ZAM-ACK]
  - id: refus_dmp
    say: Le DMP refuse un document, la professionnelle étant interdite
    expect: {channel: dmp, operation: TD2.1, code: PROFESSIONAL_BLOCKED}
    verdict: refused
"""),
]


def _section(m: Map, seen: set[str], out: list[str]) -> None:
    if m.name in seen:
        return
    seen.add(m.name)
    out.append(f"\n### {m.name}\n")
    if m.one_of:
        out.append("Give exactly one of: " + "; ".join(", ".join(f"`{f}`" for f in g) for g in m.one_of) + ".\n")
    out.append("| field | type | required | default | meaning |\n|---|---|---|---|---|")
    nested: list[Map] = []
    for name, f in m.fields.items():
        out.append(f"| `{name}` | {f.spec.kind()} | {'yes' if f.required else ''} | {_default(f)} | {f.doc} |")
        for spec in (f.spec, getattr(f.spec, "item", None)):
            if isinstance(spec, Map) and spec.name:
                nested.append(spec)
    for spec in nested:
        _section(spec, seen, out)


def _default(f: Field) -> str:
    if f.default is None:
        return ""
    value = f.default() if callable(f.default) else f.default
    if value in ([], {}):
        return "empty"
    return f"`{value}`"


def render() -> str:
    out = [INTRO, "\n## Fields\n"]
    seen: set[str] = set()
    _section(SCENARIO, seen, out)
    out.append("\n## Actions\n")
    out.append("Each action is a mapping with one key, the action's name, whose value holds its fields. `by` "
               "names who acts (a professional id, or `patient`); without it the bench acts, past the "
               "access rules but under the DMP's other rules.\n")
    for name, spec in ACTIONS.items():
        out.append(f"\n### {name}\n")
        out.append("| field | type | required | meaning |\n|---|---|---|---|")
        for fname, f in spec.fields.items():
            out.append(f"| `{fname}` | {_kind(f.spec)} | {'yes' if f.required else ''} | {f.doc} |")
        if spec.one_of:
            out.append("\nGive exactly one of: " + "; ".join(", ".join(f"`{x}`" for x in g) for g in spec.one_of)
                       + ".")
    out.append("\n## Examples\n")
    out.append("Each example is a complete scenario that `mockbench scenario validate` accepts (a test checks it).\n")
    for title, text in EXAMPLES:
        out.append(f"\n### {title}\n\n```yaml\n{text}```")
    return "\n".join(out) + "\n"


def _kind(spec: Spec) -> str:
    if isinstance(spec, ListOf):
        return f"list of {_kind(spec.item)}"
    return spec.kind()


if __name__ == "__main__":
    sys.stdout.write(render())
