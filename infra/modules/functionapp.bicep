// The function app that runs the holdfast custom handler, on Flex Consumption (FC1, default) or on the legacy
// Linux Consumption plan (Y1, retires 30 Sep 2028). Every connection is identity-based with the user-assigned
// identity; no key or connection string with a secret is written to the app settings.

@description('Azure region of the plan and the app.')
@minLength(1)
@maxLength(64)
param location string

@description('Tags applied to the plan and the app.')
param tags object

@description('Hosting plan: FlexConsumption (FC1) or the legacy Linux Consumption plan (Y1).')
@allowed([
  'FlexConsumption'
  'Consumption'
])
param hostingPlan string

@description('App Service plan name.')
@minLength(1)
@maxLength(60)
param planName string

@description('Function app name (also the host name prefix).')
@minLength(2)
@maxLength(60)
param appName string

@description('Resource ID of the user-assigned managed identity.')
@minLength(1)
@maxLength(512)
param identityId string

@description('Client ID of the user-assigned managed identity.')
@minLength(36)
@maxLength(36)
param identityClientId string

@description('Blob service endpoint of the storage account, ending in a slash (AzureWebJobsStorage__blobServiceUri).')
@minLength(1)
@maxLength(2048)
param blobEndpoint string

@description('Queue service endpoint of the storage account, ending in a slash (AzureWebJobsStorage__queueServiceUri).')
@minLength(1)
@maxLength(2048)
param queueEndpoint string

@description('Table service endpoint of the storage account, ending in a slash (AzureWebJobsStorage__tableServiceUri, DeferralStorage__tableServiceUri).')
@minLength(1)
@maxLength(2048)
param tableEndpoint string

@description('Blob container holding the deployment package.')
@minLength(3)
@maxLength(63)
param deploymentContainerName string

@description('Application Insights component name in this resource group.')
@minLength(1)
@maxLength(260)
param appInsightsName string

@description('Service Bus fully qualified namespace (ServiceBusConnection__fullyQualifiedNamespace).')
@minLength(1)
@maxLength(300)
param serviceBusNamespace string

@description('HOLDFAST_ENTITY: the queue, or <topic>/Subscriptions/<subscription>.')
@minLength(1)
@maxLength(600)
param entityPath string

@description('HOLDFAST_DEFERRAL_TABLE: the deferral ledger table.')
@minLength(3)
@maxLength(63)
param deferralTableName string

@description('Host functionTimeout in minutes. Consumption (Y1) allows at most 10; larger values are clamped there.')
@minValue(1)
@maxValue(240)
param functionTimeoutMinutes int

@description('HOLDFAST_LOCK_DURATION: the peek-lock duration of the entity in seconds; the handler sizes its Service Bus retries from it.')
@minValue(5)
@maxValue(300)
param lockDurationSeconds int

@description('HOLDFAST_MESSAGE_TTL: the entity\'s default message time-to-live in hours; the ledger records when a deferred message expires from it.')
@minValue(1)
@maxValue(8760)
param messageTimeToLiveHours int

@description('HOLDFAST_BATCH_SIZE: messages requested per receive call.')
@minValue(1)
@maxValue(5000)
param batchSize int

@description('HOLDFAST_CONCURRENCY: messages processed at once.')
@minValue(1)
@maxValue(1000)
param concurrency int

@description('HOLDFAST_REQUIRES_SESSION: the entity is session-enabled.')
param requiresSession bool

@description('HOLDFAST_MAX_SESSIONS: sessions one run holds at once (session-enabled entities).')
@minValue(1)
@maxValue(1000)
param maxSessions int

@description('HOLDFAST_PROCESSOR: the built-in message processor.')
@allowed([
  'demo'
  'webhook'
])
param processor string

@description('HOLDFAST_WEBHOOK_URL for the webhook processor. May carry a key, so it is secure; empty when unused.')
@secure()
@maxLength(2048)
param webhookUrl string

@description('HOLDFAST_WEBHOOK_TIMEOUT: Go duration bounding one webhook request; empty for the run budget.')
@maxLength(20)
param webhookTimeout string

@description('HOLDFAST_WEBHOOK_HEADERS: JSON object of static webhook request headers. May carry a key, so it is secure.')
@secure()
@maxLength(4096)
param webhookHeaders string

@description('HOLDFAST_WEBHOOK_AUDIENCE: Entra audience of the webhook endpoint; empty for no token.')
@maxLength(256)
param webhookAudience string

@description('ProcessQueueSchedule: six-field NCRONTAB schedule of the ProcessQueue timer.')
@minLength(11)
@maxLength(100)
param processQueueSchedule string

@description('Flex Consumption instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Flex Consumption maximum instance count.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Consumption (Y1) only: blob URL of the package zip (WEBSITE_RUN_FROM_PACKAGE), read with the identity. Empty until the first upload.')
@maxLength(2048)
param packageUrl string

var isFlex = hostingPlan == 'FlexConsumption'

// The Consumption plan stops a function after 10 minutes whatever host.json says (and fails at startup
// beyond that), so the timeout is clamped there.
var consumptionMaxTimeoutMinutes = 10
var effectiveTimeoutMinutes = isFlex ? functionTimeoutMinutes : min(functionTimeoutMinutes, consumptionMaxTimeoutMinutes)
var functionTimeout = '${padLeft(string(effectiveTimeoutMinutes / 60), 2, '0')}:${padLeft(string(effectiveTimeoutMinutes % 60), 2, '0')}:00'

// A run stops 30 s before functionTimeout so that it can abandon what is still held (the handler's margin);
// a lock is never renewed for longer than a run lasts.
var runBudgetSeconds = effectiveTimeoutMinutes * 60 - 30
var runBudget = '${runBudgetSeconds}s'

var managedIdentity = 'managedidentity'

// Settings read by the Functions host and by the handler on both plans.
var commonSettings = {
  // Host storage by explicit service URIs rather than __accountName, which assumes public Azure's suffix
  // (Functions docs: functions-reference, "Connecting to host storage with an identity").
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  AzureWebJobsStorage__credential: managedIdentity
  AzureWebJobsStorage__clientId: identityClientId
  AzureFunctionsJobHost__functionTimeout: functionTimeout
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AZURE_CLIENT_ID: identityClientId
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
  ServiceBusConnection__credential: managedIdentity
  ServiceBusConnection__clientId: identityClientId
  DeferralStorage__tableServiceUri: tableEndpoint
  DeferralStorage__credential: managedIdentity
  DeferralStorage__clientId: identityClientId
  HOLDFAST_ENTITY: entityPath
  HOLDFAST_DEFERRAL_TABLE: deferralTableName
  HOLDFAST_BATCH_SIZE: string(batchSize)
  HOLDFAST_CONCURRENCY: string(concurrency)
  HOLDFAST_REQUIRES_SESSION: string(requiresSession)
  HOLDFAST_MAX_SESSIONS: string(maxSessions)
  HOLDFAST_RUN_BUDGET: runBudget
  HOLDFAST_MAX_LOCK_RENEWAL: runBudget
  HOLDFAST_LOCK_DURATION: '${lockDurationSeconds}s'
  HOLDFAST_MESSAGE_TTL: '${messageTimeToLiveHours}h'
  HOLDFAST_PROCESSOR: processor
  HOLDFAST_WEBHOOK_URL: webhookUrl
  HOLDFAST_WEBHOOK_TIMEOUT: webhookTimeout
  HOLDFAST_WEBHOOK_HEADERS: webhookHeaders
  HOLDFAST_WEBHOOK_AUDIENCE: webhookAudience
  ProcessQueueSchedule: processQueueSchedule
}

// Consumption (Y1) only. Flex Consumption rejects these: the runtime and the package location live in
// functionAppConfig there.
var consumptionBaseSettings = {
  FUNCTIONS_EXTENSION_VERSION: '~4'
  FUNCTIONS_WORKER_RUNTIME: 'custom'
  WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID: identityId
}
var packageSettings = empty(packageUrl) ? {} : { WEBSITE_RUN_FROM_PACKAGE: packageUrl }
var consumptionSettings = union(consumptionBaseSettings, packageSettings)

var flexAppConfig = {
  deployment: {
    storage: {
      type: 'blobContainer'
      value: '${blobEndpoint}${deploymentContainerName}'
      authentication: {
        type: 'UserAssignedIdentity'
        userAssignedIdentityResourceId: identityId
      }
    }
  }
  scaleAndConcurrency: {
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
  runtime: {
    name: 'custom'
    version: '1.0'
  }
}

var flexSku = {
  name: 'FC1'
  tier: 'FlexConsumption'
}
var consumptionSku = {
  name: 'Y1'
  tier: 'Dynamic'
}
var flexSiteConfig = {
  minTlsVersion: '1.2'
}
var consumptionSiteConfig = {
  linuxFxVersion: '' // the "custom" stack
  minTlsVersion: '1.2'
  ftpsState: 'Disabled'
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: isFlex ? flexSku : consumptionSku
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2025-03-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    reserved: true
    httpsOnly: true
    siteConfig: isFlex ? flexSiteConfig : consumptionSiteConfig
    functionAppConfig: isFlex ? flexAppConfig : null
  }
}

resource appSettings 'Microsoft.Web/sites/config@2025-03-01' = {
  parent: site
  name: 'appsettings'
  properties: isFlex ? commonSettings : union(commonSettings, consumptionSettings)
}

// No publishing passwords: deployments authenticate with Entra ID tokens (azd, func, az) or the identity.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('Function app name.')
output name string = site.name

@description('Function app resource ID.')
output id string = site.id

@description('Default host name of the app.')
output defaultHostName string = site.properties.defaultHostName

@description('functionTimeout applied through AzureFunctionsJobHost__functionTimeout (hh:mm:ss).')
output functionTimeout string = functionTimeout
