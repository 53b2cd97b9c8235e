// Storage account shared by the Functions host (AzureWebJobsStorage), the deployment package container and
// the deferral ledger table. Keys are disabled: every client, the host included, uses the app's managed identity.
import { roleIds } from 'roles.bicep'

@description('Azure region of the account.')
@minLength(1)
@maxLength(64)
param location string

@description('Tags applied to every resource.')
param tags object

@description('Storage account name: 3-24 lowercase letters and digits.')
@minLength(3)
@maxLength(24)
param accountName string

@description('Blob container that holds the deployment package (Flex Consumption deployment storage, or the Y1 run-from-package zip).')
@minLength(3)
@maxLength(63)
param deploymentContainerName string

@description('Deferral ledger table name (HOLDFAST_DEFERRAL_TABLE): a letter then 2-62 letters or digits.')
@minLength(3)
@maxLength(63)
param deferralTableName string

@description('Principal ID of the app identity that gets the storage data roles.')
@minLength(36)
@maxLength(36)
param principalId string

@description('Grant the app identity the host storage role (Blob Data Owner): the Functions plans need it, a Container Apps job does not.')
param hostStorage bool

resource account 'Microsoft.Storage/storageAccounts@2025-06-01' = {
  name: accountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity-based AzureWebJobsStorage and ledger access only
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-06-01' = {
  parent: account
  name: 'default'
}

resource deferralTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-06-01' = {
  parent: tableService
  name: deferralTableName
}

// Account scope: the host keeps blobs in containers it creates itself (azure-webjobs-hosts, ...), and the
// Flex platform reads the package from deploymentContainer with the same identity.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hostStorage) {
  name: guid(account.id, principalId, roleIds.storageBlobDataOwner)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Account scope rather than the ledger table: the host also creates and writes its own tables in
// AzureWebJobsStorage, and table-scoped assignments cannot cover tables that do not exist yet.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleIds.storageTableDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Service endpoints from the cloud's storage suffix (environment().suffixes.storage), so that the same template
// works in public Azure and in sovereign clouds; no host name is written into the template.
var endpointSuffix = environment().suffixes.storage

@description('Storage account name.')
output accountName string = account.name

@description('Blob service endpoint (https, ending in a slash): AzureWebJobsStorage__blobServiceUri and the deployment container.')
output blobEndpoint string = 'https://${account.name}.blob.${endpointSuffix}/'

@description('Queue service endpoint (https, ending in a slash): AzureWebJobsStorage__queueServiceUri.')
output queueEndpoint string = 'https://${account.name}.queue.${endpointSuffix}/'

@description('Table service endpoint (https, ending in a slash): AzureWebJobsStorage__tableServiceUri and DeferralStorage__tableServiceUri.')
output tableEndpoint string = 'https://${account.name}.table.${endpointSuffix}/'

@description('Deployment package container name.')
output deploymentContainerName string = deploymentContainer.name

@description('Deferral ledger table name.')
output deferralTableName string = deferralTable.name
