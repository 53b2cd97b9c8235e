// Log Analytics workspace and workspace-based Application Insights with local (instrumentation key) auth
// disabled: telemetry is accepted only with an Entra ID token from the app's identity.
import { roleIds } from 'roles.bicep'

@description('Azure region of the monitoring resources.')
@minLength(1)
@maxLength(64)
param location string

@description('Tags applied to every resource.')
param tags object

@description('Log Analytics workspace name.')
@minLength(4)
@maxLength(63)
param workspaceName string

@description('Application Insights component name.')
@minLength(1)
@maxLength(260)
param appInsightsName string

@description('Log retention in days.')
@minValue(30)
@maxValue(730)
param retentionInDays int

@description('Principal ID of the app identity that publishes telemetry.')
@minLength(36)
@maxLength(36)
param principalId string

@description('Grant the app identity Monitoring Metrics Publisher: the Functions host sends telemetry, a Container Apps job only logs to the workspace.')
param publishTelemetry bool

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (publishTelemetry) {
  name: guid(appInsights.id, principalId, roleIds.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Resource ID of the Log Analytics workspace (the Container Apps environment sends its logs there).')
output workspaceId string = workspace.id

@description('Application Insights component name (the function app reads its connection string itself).')
output appInsightsName string = appInsights.name
