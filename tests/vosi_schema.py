"""The VOSI schemas (capabilities, availability) with the VOResource 1.1
and VODataService 1.1 schemas they build on, compiled for lxml.

They are read from Debian's STILTS (``starlink-ttools.jar``, installed with
the ``stilts`` package that ``.ci/run`` installs), which ships the IVOA's
schemas for its ``taplint`` validator; nothing is copied into this
repository. VODataService imports the STC schema only for coverage, which
phaser's documents do not have: a stub stands in for it.
"""

from __future__ import annotations

import glob
import os
import zipfile
from dataclasses import dataclass

import pytest
from lxml import etree

__all__ = ["VosiSchemas", "load_vosi_schemas"]

_JARS = "/usr/share/java/starlink-ttools*.jar"
_IN_JAR = "uk/ac/starlink/ttools/taplint/"

_STC_STUB = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
 targetNamespace="http://www.ivoa.net/xml/STC/stc-v1.30.xsd">
 <xs:element name="STCResourceProfile"/>
 <xs:complexType name="stcDescriptionType" mixed="true"><xs:sequence>
  <xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>
 </xs:sequence><xs:anyAttribute processContents="skip"/></xs:complexType>
</xs:schema>"""


@dataclass(frozen=True)
class VosiSchemas:
    """VOSI capabilities (with VODataService's interface types) and VOSI
    availability."""

    capabilities: etree.XMLSchema
    availability: etree.XMLSchema


def load_vosi_schemas() -> VosiSchemas:
    """The schemas, from the installed STILTS (a skip where it is not
    installed, a failure under CI, which installs it)."""
    jars = sorted(glob.glob(_JARS))
    if not jars:
        if os.environ.get("CI"):
            pytest.fail("starlink-ttools.jar missing; .ci/run installs stilts")
        pytest.skip("STILTS is not installed (its jar has the VOSI schemas)")
    with zipfile.ZipFile(jars[0]) as jar:

        def read(name: str) -> bytes:
            return jar.read(_IN_JAR + name)

        local = {
            "http://www.ivoa.net/xml/VOResource/v1.0": read(
                "VOResource-v1.1.xsd"
            ),
            "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": _STC_STUB,
            "urn:x-test:capabilities": read("VOSICapabilities-v1.0.xsd"),
            "urn:x-test:vodataservice": read("VODataService-v1.1.xsd"),
            "urn:x-test:availability": read("VOSIAvailability-v1.0.xsd"),
        }

    class _Local(etree.Resolver):
        def resolve(self, url: str, pubid: str, context: object) -> object:
            if url in local:
                return self.resolve_string(local[url], context)
            return None

    parser = etree.XMLParser()
    parser.resolvers.add(_Local())

    def schema(*imports: tuple[str, str]) -> etree.XMLSchema:
        text = (
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            + "".join(
                f'<xs:import namespace="{ns}" schemaLocation="{where}"/>'
                for ns, where in imports
            )
            + "</xs:schema>"
        )
        return etree.XMLSchema(etree.fromstring(text.encode(), parser))

    return VosiSchemas(
        capabilities=schema(
            (
                "http://www.ivoa.net/xml/VOSICapabilities/v1.0",
                "urn:x-test:capabilities",
            ),
            (
                "http://www.ivoa.net/xml/VODataService/v1.1",
                "urn:x-test:vodataservice",
            ),
        ),
        availability=schema(
            (
                "http://www.ivoa.net/xml/VOSIAvailability/v1.0",
                "urn:x-test:availability",
            )
        ),
    )
