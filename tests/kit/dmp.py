"""Builders for the DMP door's tests: the shipped ones (mockbench.testing.messages, which vendors use too)
and the world these tests load."""

from mockbench.testing.messages import (  # noqa: F401 - re-exported to the tests
    CONFIDENTIALITY_SCHEME,
    HL7,
    LCM,
    QUERY,
    RIM,
    SAML,
    WSSE,
    XDS_B,
    XSI,
    cda,
    existence_test,
    find_documents,
    provide_and_register,
    retrieve,
    update_metadata,
    update_status,
    vihf,
)

WORLD = """\
id: dmp-test
title: Essai DMP
seed: 9
world:
  structures: [{id: chu, name: CHU de Test}, {id: clinique, name: Clinique}]
  professionals:
    - {id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}
    - {id: dr_b, family_name: PETIT, given_name: Paul, structure: chu}
    - {id: dr_c, family_name: ROUX, given_name: Claire, structure: clinique}
  patients:
    - id: alice
      sex: F
      family_name: DURAND
      given_name: Alice
      birth_date: "1980-05-04"
      authorizations: [{structure: chu}]
      documents:
        - {id: cr_masque, author: dr_b, confidentiality: [MASQUE_PS]}
"""
