"""The Processing algorithms: super-resolve a Sentinel-2 product, or band layers of the project.

Both are thin over ``dsen2``: parameters become ``RunOptions``, ``QgsProcessingFeedback`` becomes
the core's progress callback and cancellation predicate, and core errors become
``QgsProcessingException`` with the core's message. The core is imported only when an algorithm
runs, so the toolbox lists the algorithms (with a clear message) even before onnxruntime is
installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)
from qgis.PyQt.QtCore import QCoreApplication

from .dependencies import bf16_install_hint, install_hint, missing_dependencies

if TYPE_CHECKING:
    from dsen2.product import Product
    from dsen2.window import Window

HELP_URL = "https://github.com/dsen2-toolkit/dsen2#qgis"
BAND_CHOICES = ("all", "20m")
DEVICE_CHOICES = ("auto", "cuda", "cpu")
PRECISION_CHOICES = ("fp32", "bf16")
AUTOMATIC_TILE_SIZE_PX = 0  # RunOptions picks the precision's default (384 px fp32, 768 px bf16)
MIN_TILE_SIZE_PX = 48  # smaller tiles are mostly halo: many times slower for no memory gain
DEFAULT_MODEL = "dsen2"  # the catalogue family dsen2 run uses by default

_SHARED_HELP = """
<p><b>Output</b>: a tiled, compressed GeoTIFF on the 10 m grid with the input's georeferencing.
<i>All bands</i> gives B1 B2 B3 B4 B5 B6 B7 B8 B8A B9 B11 B12 (B10 is left out, as in the paper;
the 10 m bands are copied unchanged); <i>20 m bands only</i> gives B5 B6 B7 B8A B11 B12. Band
names carry the wavelength, e.g. "B5 (705 nm)".</p>
<p><b>Radiometry</b>: by default the output keeps the input's digital numbers (DN), offset
included, so it can replace the original bands; each band's scale and offset turn DN into
reflectance. <i>Reflectance (float32)</i> writes reflectance instead. Provenance (models and their
sha256, product id, level, baseline, offsets) is written into the file's metadata.</p>
<p><b>Model</b>: a family from the model catalogue, or a folder of your own ONNX exports
(advanced). <b>Device</b>: <i>auto</i> uses CUDA when onnxruntime-gpu and an NVIDIA GPU are
present, the CPU otherwise; asking for CUDA without one is an error.</p>
<p><b>Time and memory</b>: memory is bounded by the tile size, not the image; tile size 0
picks 384 pixels in fp32 (about 0.6 GB) and 768 in bf16; other sizes are rounded down to a
multiple of 6 (the 60 m pixel lattice), with a warning. A full 10980×10980 tile with both
networks takes about 17 minutes on two modern CPU cores in fp32 and 9 in bf16 (GPU times are
not measured yet). Cancelling stops within one tile and leaves no output.</p>
<p><b>Precision</b> (advanced): <i>bf16</i> runs the networks about twice as fast on CPUs
with native bf16 (AVX-512-BF16 or AMX) and changes the output by a few DN (mean RMSE against
the true bands +0.11 to +0.17 DN on held-out scenes); it runs on the CPU and needs OpenVINO in
QGIS's Python (the error message gives the command).</p>
<p>Needs onnxruntime in QGIS's Python: if it is missing, use Plugins ▸ DSen2 ▸ Install
dependencies.</p>
"""


class _SuperResolveAlgorithm(QgsProcessingAlgorithm):
    """Parameters and the run shared by both algorithms; subclasses add their input."""

    MODEL = "MODEL"
    MODEL_FOLDER = "MODEL_FOLDER"
    BANDS = "BANDS"
    DEVICE = "DEVICE"
    EXTENT = "EXTENT"
    TILE_SIZE = "TILE_SIZE"
    PRECISION = "PRECISION"
    COG = "COG"
    REFLECTANCE = "REFLECTANCE"
    OUTPUT = "OUTPUT"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("DSen2", text)

    def group(self) -> str:
        return self.tr("Sentinel-2")

    def groupId(self) -> str:  # noqa: N802 (QGIS API names)
        return "sentinel2"

    def helpUrl(self) -> str:  # noqa: N802
        return HELP_URL

    def tags(self) -> list[str]:
        return self.tr("sentinel-2,super-resolution,dsen2,sharpen,10 m,20 m,60 m").split(",")

    def canExecute(self) -> tuple[bool, str]:  # noqa: N802
        problem = missing_dependencies()
        if problem is None:
            return True, ""
        return False, self.tr(f"DSen2 cannot run: {problem}. {install_hint()}")

    def _add_input_parameters(self) -> None:
        raise NotImplementedError

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self._add_input_parameters()
        self.addParameter(
            QgsProcessingParameterEnum(
                self.MODEL, self.tr("Model"), options=list(_model_families()), defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.BANDS,
                self.tr("Bands to output"),
                options=[self.tr("All bands (B1–B12 without B10)"), self.tr("20 m bands only")],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.DEVICE,
                self.tr("Device"),
                options=[self.tr("Auto (CUDA when available)"), "CUDA", "CPU"],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterExtent(
                self.EXTENT, self.tr("Processing extent (default: whole product)"), optional=True
            )
        )
        advanced = [
            QgsProcessingParameterNumber(
                self.TILE_SIZE,
                self.tr("Tile size (10 m pixels, bounds memory; 0 = automatic)"),
                type=QgsProcessingParameterNumber.Integer,
                defaultValue=AUTOMATIC_TILE_SIZE_PX,
                minValue=0,
                maxValue=4096,
            ),
            QgsProcessingParameterEnum(
                self.PRECISION,
                self.tr("Precision"),
                options=[
                    self.tr("fp32 (reference)"),
                    self.tr("bf16 (about 2× faster on CPUs with native bf16; needs OpenVINO)"),
                ],
                defaultValue=0,
            ),
            QgsProcessingParameterBoolean(
                self.COG, self.tr("Write a Cloud-Optimized GeoTIFF (with overviews)"), False
            ),
            QgsProcessingParameterBoolean(
                self.REFLECTANCE, self.tr("Write reflectance as float32 instead of DN"), False
            ),
            QgsProcessingParameterFile(
                self.MODEL_FOLDER,
                self.tr("Folder of custom ONNX models (overrides Model)"),
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            ),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Super-resolved (10 m)"))
        )

    def _input_paths(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[list[str], float | None]:
        """The input paths for ``dsen2.product.open_product`` and the DN offset to assume."""
        raise NotImplementedError

    def processAlgorithm(  # noqa: N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        problem = missing_dependencies()
        if problem is not None:
            raise QgsProcessingException(self.tr(f"DSen2 cannot run: {problem}. {install_hint()}"))
        from dsen2.errors import CancelledError, DSen2Error

        try:
            return self._superresolve(parameters, context, feedback)
        except CancelledError as error:
            message = self.tr(f"Cancelled: {error}")
        except (DSen2Error, QgsProcessingException) as error:
            message = str(error)
        # QGIS keeps the traceback of an exception raised here alive until the process ends. Its
        # frames must not hold layers: a QgsRasterLayer freed after QGIS has shut down crashes
        # the exit. So the error is raised from this frame, holding only the message.
        del parameters
        raise QgsProcessingException(message)

    def _superresolve(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        from dsen2.engine import RunOptions, superresolve
        from dsen2.errors import MissingDependencyError
        from dsen2.inference import Device, Precision
        from dsen2.product import open_product

        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        inputs, offset_dn = self._input_paths(parameters, context)
        product = open_product(inputs, offset_dn=offset_dn)
        device = DEVICE_CHOICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        precision = Precision(
            PRECISION_CHOICES[self.parameterAsEnum(parameters, self.PRECISION, context)]
        )
        tile_size_px = self.parameterAsInt(parameters, self.TILE_SIZE, context)
        if 0 < tile_size_px < MIN_TILE_SIZE_PX:
            raise QgsProcessingException(
                self.tr(
                    f"Tile size {tile_size_px} is too small: use 0 (automatic) or at least "
                    f"{MIN_TILE_SIZE_PX} pixels"
                )
            )
        options = RunOptions(
            model=self._model(parameters, context),
            bands=BAND_CHOICES[self.parameterAsEnum(parameters, self.BANDS, context)],
            device=Device(device),
            tile_size_px=tile_size_px,
            roi=self._roi(product, parameters, context),
            cog=self.parameterAsBool(parameters, self.COG, context),
            reflectance=self.parameterAsBool(parameters, self.REFLECTANCE, context),
            precision=precision,
        )
        feedback.pushInfo(
            self.tr(f"Input: {product.product_id} ({product.kind}, level {product.level})")
        )
        try:
            result = superresolve(
                product,
                Path(output),
                options,
                progress=lambda fraction, message: feedback.setProgress(100.0 * fraction),
                is_cancelled=feedback.isCanceled,
            )
        except MissingDependencyError as error:  # the core's advice is a pip line for its venv
            raise QgsProcessingException(
                self.tr(
                    f"Precision bf16 cannot run: OpenVINO is not installed in QGIS's Python "
                    f"({error.__cause__}). {bf16_install_hint()}"
                )
            ) from None
        feedback.pushInfo(
            self.tr(
                f"Wrote {result.width_px}×{result.height_px} px, bands "
                f"{' '.join(result.band_names)}, with {', '.join(result.model_names)} on "
                f"{result.device} in {result.seconds:.1f} s ({result.megapixels_per_s:.2f} Mpx/s)"
            )
        )
        for warning in result.warnings:
            feedback.pushWarning(self.tr(warning))
        if any("baseline" in name for name in result.model_names):
            feedback.pushWarning(
                self.tr(
                    "The catalogue's models are untrained baselines: the 20 m and 60 m bands are "
                    "bilinearly upsampled, not sharpened."
                )
            )
        return {self.OUTPUT: output}

    def _model(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        folder = self.parameterAsFile(parameters, self.MODEL_FOLDER, context)
        if folder:
            return folder
        return _model_families()[self.parameterAsEnum(parameters, self.MODEL, context)]

    def _roi(
        self, product: Product, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> Window | None:
        """The processing extent as a window of the product's 10 m grid, or None for all."""
        if not parameters.get(self.EXTENT):
            return None
        from dsen2.raster import inspect_band

        if "B2" not in product.band_files:
            return None  # the engine reports the missing bands with the full list
        reference = inspect_band("B2", product.band_files["B2"])
        crs = QgsCoordinateReferenceSystem.fromWkt(reference.crs_wkt)
        extent = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
        return reference.grid.window_of_bounds(
            extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()
        )


class SuperResolveProduct(_SuperResolveAlgorithm):
    """``dsen2:superresolveproduct``: a SAFE product (.zip, folder or MTD XML)."""

    INPUT = "INPUT"

    def name(self) -> str:
        return "superresolveproduct"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Super-resolve Sentinel-2 product to 10 m")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "<p>Sharpens the 20 m bands (B5 B6 B7 B8A B11 B12) and the 60 m bands (B1 B9) of a "
            "Sentinel-2 L1C or L2A product to 10 m with the DSen2 networks (Lanaras et al. 2018), "
            "guided by the 10 m bands.</p><p><b>Input</b>: the product as downloaded (.zip), "
            "its unpacked .SAFE folder, or the MTD_MSIL1C.xml / MTD_MSIL2A.xml inside it. Level, "
            "processing baseline and radiometric offsets are read from the metadata. A folder of "
            "per-band rasters named with their band ids (B02, B8A...) also works.</p>"
            + _SHARED_HELP
        )

    def createInstance(self) -> SuperResolveProduct:  # noqa: N802
        return SuperResolveProduct()

    def _add_input_parameters(self) -> None:
        self.addParameter(
            QgsProcessingParameterFile(
                self.INPUT,
                self.tr("Sentinel-2 product (.zip, .SAFE folder or MTD XML)"),
                fileFilter=self.tr(
                    "Sentinel-2 products (*.zip *.ZIP MTD_MSIL1C.xml MTD_MSIL2A.xml);;All files (*)"
                ),
            )
        )

    def _input_paths(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[list[str], float | None]:
        return [self.parameterAsFile(parameters, self.INPUT, context)], None


class SuperResolveBands(_SuperResolveAlgorithm):
    """``dsen2:superresolvebands``: single-band raster layers already in the project."""

    INPUT = "INPUT"
    OFFSET = "OFFSET"

    def name(self) -> str:
        return "superresolvebands"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Super-resolve Sentinel-2 band layers to 10 m")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "<p>Sharpens Sentinel-2 band layers loaded in the project: select the band rasters of "
            "one product (B2 B3 B4 B8 and B5 B6 B7 B8A B11 B12; also B1 and B9 for all bands). "
            "Bands are recognised by their file names (…_B05.jp2, B8A.tif…); a missing band is "
            "an error that lists what was found. Layers must be single-band rasters at native "
            "resolution on the product's tile grid.</p><p><b>Offset</b> (advanced): products of "
            "processing baseline 04.00 and later (from 25 January 2022) store DN with a +1000 "
            "offset: enter -1000 for their bands. A whole product read with the product "
            "algorithm finds its offsets itself.</p>" + _SHARED_HELP
        )

    def createInstance(self) -> SuperResolveBands:  # noqa: N802
        return SuperResolveBands()

    def _add_input_parameters(self) -> None:
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.INPUT, self.tr("Sentinel-2 band layers"), QgsProcessing.TypeRaster
            )
        )
        offset = QgsProcessingParameterNumber(  # unset: none given (0 says "already removed")
            self.OFFSET,
            self.tr("Radiometric offset of the DN (-1000 for baseline 04.00 and later)"),
            type=QgsProcessingParameterNumber.Double,
            optional=True,
        )
        offset.setFlags(offset.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(offset)

    def _input_paths(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[list[str], float | None]:
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        paths = []
        for layer in layers:
            source = layer.source()
            if layer.providerType() != "gdal" or not source:
                raise QgsProcessingException(
                    self.tr(
                        f"layer {layer.name()!r} is not a GDAL raster file; add the band files "
                        "themselves (JP2 or GeoTIFF)"
                    )
                )
            paths.append(source)
        if not paths:
            raise QgsProcessingException(self.tr("select the band layers of one product"))
        given = parameters.get(self.OFFSET) not in (None, "")
        offset_dn = self.parameterAsDouble(parameters, self.OFFSET, context) if given else None
        return paths, offset_dn


def _model_families() -> tuple[str, ...]:
    """The catalogue's model families, the default (``dsen2``) first, read from its JSON without
    importing onnxruntime."""
    try:
        from dsen2.catalogue import families, load_catalogue

        return tuple(sorted(families(load_catalogue()), key=lambda name: name != DEFAULT_MODEL))
    except ImportError:  # the core itself is not importable: keep the dialog usable
        return (DEFAULT_MODEL,)
