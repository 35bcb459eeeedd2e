"""cdkd-medical: medical imaging domains, loaders for your own medical images, and a
ResNet image stem for cdkd.

Domains (``medical.<dataset>``):

- ``medical.nuclei`` - nucleus vs background patches of a real annotated fluorescence
  image (stardist / 2018 Data Science Bowl), split by spatial blocks with guard bands;
- ``medical.breast_cancer_fna`` - breast-mass FNA images as 30 measured features (WDBC);
- loaders for your files: ``medical.medmnist`` (.npz), ``medical.image_folder``
  (PNG/JPEG), ``medical.dicom``, ``medical.nifti`` (slices, split by volume).

Architectures: ``resnet`` (ResNet stem at any width in torchvision's layout, GroupNorm by
default).

Only torch, pydantic and cdkd_core are imported here; the file readers
(tifffile, pydicom, nibabel, Pillow, scikit-learn) are imported when a component is built
or loads its data, so ``cdkd plugins list`` stays fast.
"""

from __future__ import annotations

from cdkd_core import hookimpl
from cdkd_medical.architectures import ResNetStem
from cdkd_medical.dicom import Dicom
from cdkd_medical.fna import BreastCancerFNA
from cdkd_medical.image_folder import ImageFolder
from cdkd_medical.medmnist import MedMNIST
from cdkd_medical.nifti import Nifti
from cdkd_medical.nuclei import NucleiPatches

__version__ = "0.1.0"

DOMAINS = (NucleiPatches, BreastCancerFNA, MedMNIST, ImageFolder, Dicom, Nifti)
ARCHITECTURES = (ResNetStem,)

__all__ = [
    "ARCHITECTURES",
    "DOMAINS",
    "BreastCancerFNA",
    "Dicom",
    "ImageFolder",
    "MedMNIST",
    "Nifti",
    "NucleiPatches",
    "ResNetStem",
    "__version__",
]


@hookimpl
def register_domains(register):
    """The medical domains and loaders."""
    for cls in DOMAINS:
        register(cls)


@hookimpl
def register_architectures(register):
    """The ResNet image stem."""
    for cls in ARCHITECTURES:
        register(cls)
