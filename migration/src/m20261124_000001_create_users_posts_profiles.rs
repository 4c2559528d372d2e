//! The first schema: users, their posts and their profiles.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(uuid(Users::Id).primary_key())
                    .col(text(Users::Email).unique_key())
                    .col(text_null(Users::Name))
                    .col(timestamp_with_time_zone(Users::CreatedAt).default(Expr::current_timestamp()))
                    .col(timestamp_with_time_zone(Users::UpdatedAt).default(Expr::current_timestamp()))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Posts::Table)
                    .if_not_exists()
                    .col(uuid(Posts::Id).primary_key())
                    .col(text(Posts::Title))
                    .col(text_null(Posts::Content))
                    .col(uuid(Posts::AuthorId))
                    .col(timestamp_with_time_zone(Posts::CreatedAt).default(Expr::current_timestamp()))
                    .col(timestamp_with_time_zone(Posts::UpdatedAt).default(Expr::current_timestamp()))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_posts_author")
                            .from(Posts::Table, Posts::AuthorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // Serves `User.posts` and `posts(authorId)`: one range scan per author, already in
        // page order, for both the keyset cursor and the per-author window.
        manager
            .create_index(
                Index::create()
                    .name("idx_posts_author_created_id")
                    .table(Posts::Table)
                    .col(Posts::AuthorId)
                    .col(Posts::CreatedAt)
                    .col(Posts::Id)
                    .to_owned(),
            )
            .await?;

        // Serves the unfiltered `posts` listing in the same order.
        manager
            .create_index(
                Index::create()
                    .name("idx_posts_created_id")
                    .table(Posts::Table)
                    .col(Posts::CreatedAt)
                    .col(Posts::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Profiles::Table)
                    .if_not_exists()
                    .col(uuid(Profiles::UserId).primary_key())
                    .col(
                        // Same bound as the API's validation: the backstop for any writer.
                        text_null(Profiles::Bio).check(Expr::cust("length(bio) <= 2000")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_profiles_user")
                            .from(Profiles::Table, Profiles::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Profiles::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Posts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Posts {
    Table,
    Id,
    Title,
    Content,
    AuthorId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Profiles {
    Table,
    UserId,
    Bio,
}
