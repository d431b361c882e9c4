<?xml version="1.0" encoding="UTF-8"?>
<!-- UWS 1.1 job and job-list documents as HTML pages, for browsers
     (phaser's documents name this stylesheet in an xml-stylesheet
     processing instruction; XML clients ignore it). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"
    xmlns:xlink="http://www.w3.org/1999/xlink"
    xmlns:phaser="urn:x-phaser:uws-extension:v1"
    exclude-result-prefixes="uws xlink phaser">
  <xsl:output method="html" encoding="UTF-8" indent="yes"/>

  <xsl:template name="page">
    <xsl:param name="title"/>
    <xsl:param name="body"/>
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <title><xsl:value-of select="$title"/></title>
        <style>
          body { font-family: system-ui, sans-serif; margin: 2rem; color: #1a1a1a; }
          table { border-collapse: collapse; }
          th, td { text-align: left; padding: .25rem .75rem; border-bottom: 1px solid #ccc; }
          th { background: #f0f0f0; }
          .phase { font-weight: bold; }
        </style>
      </head>
      <body>
        <h1><xsl:value-of select="$title"/></h1>
        <xsl:copy-of select="$body"/>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="/uws:job">
    <xsl:call-template name="page">
      <xsl:with-param name="title" select="concat('UWS job ', uws:jobId)"/>
      <xsl:with-param name="body">
        <table>
          <tr><th scope="row">Phase</th><td class="phase"><xsl:value-of select="uws:phase"/></td></tr>
          <tr><th scope="row">Run id</th><td><xsl:value-of select="uws:runId"/></td></tr>
          <tr><th scope="row">Owner</th><td><xsl:value-of select="uws:ownerId"/></td></tr>
          <tr><th scope="row">Created</th><td><xsl:value-of select="uws:creationTime"/></td></tr>
          <tr><th scope="row">Started</th><td><xsl:value-of select="uws:startTime"/></td></tr>
          <tr><th scope="row">Ended</th><td><xsl:value-of select="uws:endTime"/></td></tr>
          <tr><th scope="row">Execution duration (s)</th><td><xsl:value-of select="uws:executionDuration"/></td></tr>
          <tr><th scope="row">Destruction</th><td><xsl:value-of select="uws:destruction"/></td></tr>
          <xsl:if test="uws:jobInfo/phaser:progress">
            <tr>
              <th scope="row">Progress</th>
              <td>
                <xsl:value-of select="uws:jobInfo/phaser:progress/@percent"/>
                <xsl:text>% </xsl:text>
                <xsl:value-of select="uws:jobInfo/phaser:progress"/>
              </td>
            </tr>
          </xsl:if>
          <xsl:if test="uws:errorSummary">
            <tr><th scope="row">Error</th><td><xsl:value-of select="uws:errorSummary/uws:message"/></td></tr>
          </xsl:if>
        </table>
        <h2>Parameters</h2>
        <table>
          <tr><th scope="col">Name</th><th scope="col">Value</th></tr>
          <xsl:for-each select="uws:parameters/uws:parameter">
            <tr><td><xsl:value-of select="@id"/></td><td><xsl:value-of select="."/></td></tr>
          </xsl:for-each>
        </table>
        <xsl:if test="uws:jobInfo/phaser:ignoredParameter">
          <p>
            <xsl:text>Ignored parameters: </xsl:text>
            <xsl:for-each select="uws:jobInfo/phaser:ignoredParameter">
              <xsl:value-of select="."/>
              <xsl:if test="position() != last()">, </xsl:if>
            </xsl:for-each>
          </p>
        </xsl:if>
        <h2>Results</h2>
        <ul>
          <xsl:for-each select="uws:results/uws:result">
            <li>
              <a href="{@xlink:href}"><xsl:value-of select="@id"/></a>
              <xsl:if test="@size">
                <xsl:text> (</xsl:text><xsl:value-of select="@size"/><xsl:text> bytes)</xsl:text>
              </xsl:if>
            </li>
          </xsl:for-each>
        </ul>
      </xsl:with-param>
    </xsl:call-template>
  </xsl:template>

  <xsl:template match="/uws:jobs">
    <xsl:call-template name="page">
      <xsl:with-param name="title" select="'UWS jobs'"/>
      <xsl:with-param name="body">
        <table>
          <tr>
            <th scope="col">Job</th><th scope="col">Phase</th>
            <th scope="col">Run id</th><th scope="col">Created</th>
          </tr>
          <xsl:for-each select="uws:jobref">
            <tr>
              <td><a href="{@xlink:href}"><xsl:value-of select="@id"/></a></td>
              <td class="phase"><xsl:value-of select="uws:phase"/></td>
              <td><xsl:value-of select="uws:runId"/></td>
              <td><xsl:value-of select="uws:creationTime"/></td>
            </tr>
          </xsl:for-each>
        </table>
      </xsl:with-param>
    </xsl:call-template>
  </xsl:template>
</xsl:stylesheet>
