// Parameters for main.bicep. azd fills AZURE_ENV_NAME; HOLDFAST_* environment variables (azd env set, or the
// shell for az deployment group create) choose the prefix, the plan and the Consumption package URL; any other
// parameter can be overridden on the command line (--parameters name=value).
using './main.bicep'

param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', '')
param namePrefix = readEnvironmentVariable('HOLDFAST_NAME_PREFIX', 'holdfast')
param hostingPlan = readEnvironmentVariable('HOLDFAST_HOSTING_PLAN', 'FlexConsumption') // or 'Consumption' (legacy Y1): make deploy-consumption; or 'ContainerAppsJob'
param containerImage = readEnvironmentVariable('HOLDFAST_IMAGE', '') // ContainerAppsJob only; set by scripts/deploy-job.sh
param packageUrl = readEnvironmentVariable('HOLDFAST_PACKAGE_URL', '') // Consumption only; set by scripts/deploy-consumption.sh
param entityKind = 'queue'
param queueName = 'holdfast'

// Queue settings: see infra/README.md for the failure each one prevents.
param lockDurationSeconds = 60
param maxDeliveryCount = 10
param messageTimeToLiveHours = 336
param deadLetteringOnMessageExpiration = true
param autoDeleteOnIdle = 'P10675199DT2H48M5.4775807S'
param requiresDuplicateDetection = true
param duplicateDetectionWindowMinutes = 1440
param enableBatchedOperations = true
param maxSizeInMegabytes = 1024

// Handler settings.
param deferralTableName = 'holdfastdeferrals'
param functionTimeoutMinutes = 10
param batchSize = 20
param concurrency = 8
param processor = 'demo'
param processQueueSchedule = '0 */1 * * * *'
