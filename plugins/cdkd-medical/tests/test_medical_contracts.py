"""Every component of the plugin keeps the contract of its kind: one test per component and
named check (``cdkd_core.testing.parametrize_with_checks``), e.g.
``medical.nuclei-check_splits_are_disjoint``. The domains that read the user's files
(``medical.medmnist``, ``medical.image_folder``, ``medical.dicom``, ``medical.nifti``) have
no default data; their own test files load them from files they write."""

from __future__ import annotations

import cdkd_medical

from cdkd_core.testing import parametrize_with_checks


@parametrize_with_checks(
    ["medical.nuclei", "medical.breast_cancer_fna", "resnet"],
    plugins=[("medical", cdkd_medical)],
)
def test_components_keep_their_contracts(component, check):
    check(component)
